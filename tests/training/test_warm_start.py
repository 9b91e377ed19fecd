"""trainer.init_from: a finished run's weights on new data, rows aligned by original id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from seqrec_cli import models
from seqrec_cli.config.schema import TrainConfig
from seqrec_cli.errors import UserError
from seqrec_cli.training.checkpoint import load_checkpoint
from seqrec_cli.training.warm_start import Parent, _aligned_rows, transfer

READER = [
    "dataset=csv",
    "dataset.user_col=user",
    "dataset.item_col=item",
    "dataset.time_col=ts",
    "model.max_len=8",
    "trainer.max_epochs=2",
    "trainer.progress=false",
]


def write_events(path: Path, rows) -> Path:
    path.write_text("user,item,ts\n" + "\n".join(f"{u},{i},{t}" for u, i, t in rows) + "\n")
    return path


def day_one():
    return [(u, (u * 3 + t) % 40 + 1, t) for u in range(60) for t in range(12)]


def day_two():
    """Day one without item 7, plus items 41-45 and ten new users."""
    rows = day_one() + [(u, 41 + (u + t) % 5, 20 + t) for u in range(30) for t in range(3)]
    rows += [(100 + u, u % 40 + 1, 30 + t) for u in range(10) for t in range(5)]
    return [r for r in rows if r[1] != 7]


def test_known_rows_are_copied_exactly_new_rows_follow_the_rule_dropped_rows_go():
    old = torch.randn(5, 4)  # padding + items "a".."d"
    old[0] = 0
    gen = torch.Generator().manual_seed(3)
    out, counts = _aligned_rows(old, torch.empty(4, 4), ["a", "b", "c", "d"], ["d", "x", "b"], 0.02, gen)
    assert counts == {"kept": 2, "added": 1, "dropped": 2}
    assert torch.equal(out[0], torch.zeros(4)) and torch.equal(out[1], old[4]) and torch.equal(out[3], old[2])
    noise = 0.02 * torch.randn(3, 4, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(out[2], old[1:].mean(0) + noise[1])


def test_transfer_copies_the_encoder_and_aligns_items_by_original_id():
    cfg = TrainConfig()
    torch.manual_seed(0)
    parent_model = models.build(cfg.model, cfg.encoder, 3)
    ckpt = {"model": parent_model.state_dict(), "item_ids": [10, 20, 30], "config": {}}
    child = models.build(cfg.model, cfg.encoder, 3)
    provenance = transfer(Parent(Path("p"), ckpt, ["p"]), child, [20, 30, 40], None, cfg)
    assert provenance["items"] == {"kept": 2, "added": 1, "dropped": 1}
    new, old = child.state_dict(), parent_model.state_dict()
    assert torch.equal(new["item_embedding.weight"][1:3], old["item_embedding.weight"][2:4])
    assert all(torch.equal(new[k], old[k]) for k in old if k != "item_embedding.weight")
    with pytest.raises(UserError, match="shares no item"):
        transfer(Parent(Path("p"), ckpt, ["p"]), models.build(cfg.model, cfg.encoder, 2), [1, 2], None, cfg)


def test_a_chain_of_refreshes_records_its_lineage(tmp_path):
    one, two = write_events(tmp_path / "day1.csv", day_one()), write_events(tmp_path / "day2.csv", day_two())
    assert run_cli([*READER, f"dataset.path={one}", "hydra.run.dir=r1"], tmp_path).returncode == 0
    second = run_cli([*READER, f"dataset.path={two}", "trainer.init_from=r1", "hydra.run.dir=r2"], tmp_path)
    assert second.returncode == 0, second.stderr
    third = run_cli([*READER, f"dataset.path={two}", "trainer.init_from=r2", "hydra.run.dir=r3"], tmp_path)
    assert third.returncode == 0, third.stderr
    m2 = json.loads((tmp_path / "r2" / "metrics.json").read_text())
    assert m2["init_from"]["items"] == {"kept": 39, "added": 5, "dropped": 1}
    assert json.loads((tmp_path / "r2" / "data_summary.json").read_text())["init_from"] == m2["init_from"]
    m3 = json.loads((tmp_path / "r3" / "metrics.json").read_text())
    assert m3["init_from"]["lineage"] == [str((tmp_path / d).resolve()) for d in ("r2", "r1")]
    assert len(load_checkpoint(tmp_path / "r3" / "checkpoints" / "best.pt")["item_ids"]) == 44


def test_bad_parents_are_one_sentence(tmp_path):
    one = write_events(tmp_path / "day1.csv", day_one())
    other = write_events(tmp_path / "other.csv", [(u, 100 + (u + t) % 30, t) for u in range(60) for t in range(12)])
    assert run_cli([*READER, f"dataset.path={one}", "hydra.run.dir=r1"], tmp_path).returncode == 0
    cases = [
        (["trainer.init_from=nope"], "no such run directory"),
        (
            ["trainer.init_from=r1", "encoder=gru", "model.embedding_dim=32"],
            "model.embedding_dim, encoder.name, encoder.num_layers",
        ),
        ([f"dataset.path={other}", "trainer.init_from=r1"], "shares no item"),
    ]
    (tmp_path / "unfinished" / "checkpoints").mkdir(parents=True)
    cases.append((["trainer.init_from=unfinished"], "is not a finished run"))
    for extra, message in cases:
        args = [*READER, f"dataset.path={one}", *extra]
        result = run_cli(args, tmp_path)
        assert result.returncode == 2, (extra, result.stderr)
        assert message in " ".join(result.stderr.split()) and "Traceback" not in result.stderr
    partial = run_cli(
        [*READER, f"dataset.path={other}", "trainer.init_from=r1", "trainer.init_from_partial=true"], tmp_path
    )
    assert partial.returncode == 0, partial.stderr
