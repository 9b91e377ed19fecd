"""seqrec-export: bundles equal seqrec-recommend, run without this package, refuse tampering."""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli
from serving_support import DEFAULT_RUNS, RUNS, assert_same_top, bundle, trained_runs
from serve_parity import VARIANTS, bundle_top, compare, disagreement, eager_top, train
from seqrec_cli.errors import UserError
from seqrec_cli.serving.bundle import export_bundle
from seqrec_cli.serving.engine import open_bundle
from seqrec_cli.serving.queries import Query, pack

SLOW_RUNS = [pytest.param(name, marks=pytest.mark.slow) for name in RUNS if name not in DEFAULT_RUNS]


@pytest.mark.parametrize("name", [*DEFAULT_RUNS, *SLOW_RUNS])
def test_exported_top10_equals_seqrec_recommend(tmp_path_factory, name):
    path = bundle(tmp_path_factory, name)
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["encoder"]["name"] == RUNS[name][0].split("=")[1]
    users = [str(u) for u in open_bundle(path).histories.index][:200]
    eager, exported = eager_top(trained_runs(tmp_path_factory, (name,))[name], users), bundle_top(path, users)
    assert set(eager) == set(users)
    for user in users:
        assert_same_top(*eager[user], *exported[user])


def test_pt2_bundle_equals_the_onnx_one(tmp_path_factory):
    onnx, pt2 = bundle(tmp_path_factory, "attention"), bundle(tmp_path_factory, "attention", "pt2")
    assert json.loads((pt2 / "metadata.json").read_text())["model_file"] == "model.pt2"
    users = [str(u) for u in open_bundle(onnx).histories.index][:50]
    a, b = bundle_top(onnx, users), bundle_top(pt2, users)
    for user in users:
        assert_same_top(*a[user], *b[user])


def test_metadata_names_the_run_its_metrics_and_every_file(tmp_path_factory):
    path = bundle(tmp_path_factory, "attention")
    meta = json.loads((path / "metadata.json").read_text())
    run = trained_runs(tmp_path_factory, ("attention",))["attention"]
    assert meta["source_run"]["test"] == json.loads((run / "metrics.json").read_text())["test"]
    assert set(meta["files"]) == {"model.onnx", "items.json", "histories.npz"}
    assert meta["max_len"] == 20 and meta["k_range"] == [1, 60] and meta["versions"]["onnxruntime"]
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name]  # the temporary folder is gone


def test_a_tampered_bundle_is_refused(tmp_path_factory, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle(tmp_path_factory, "attention"), copy)
    items = json.loads((copy / "items.json").read_text())
    items["ids"][1], items["ids"][2] = items["ids"][2], items["ids"][1]
    (copy / "items.json").write_text(json.dumps(items))
    with pytest.raises(UserError, match="items.json does not match its SHA-256"):
        open_bundle(copy)
    (copy / "items.json").unlink()
    with pytest.raises(UserError, match="missing"):
        open_bundle(copy)


def test_export_refuses_an_unfinished_or_corrupt_run(tmp_path_factory, tmp_path):
    run = trained_runs(tmp_path_factory, ("attention",))["attention"]
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "metrics.json").unlink()
    with pytest.raises(UserError, match="has not finished training"):
        export_bundle(unfinished, tmp_path / "b1")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(run, corrupt)
    best = corrupt / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    with pytest.raises(UserError):
        export_bundle(corrupt, tmp_path / "b2")
    assert not (tmp_path / "b1").exists() and not (tmp_path / "b2").exists()


def test_export_of_a_missing_run_is_one_sentence_and_exit_2(tmp_path):
    result = run_cli(["run=nowhere", "out=b"], tmp_path, module="seqrec_cli.cli.export")
    assert result.returncode == 2, result.stderr
    assert "Run directory not found: nowhere" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists()


def readme_example() -> str:
    """The README's bundle example: the python block after the `bundle-example` marker."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- bundle-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md has no bundle example"
    return match.group(1)


def test_readme_example_runs_without_this_package(tmp_path_factory, tmp_path):
    path = bundle(tmp_path_factory, "attention")
    b = open_bundle(path)
    history, _, _ = b.histories.of(0)
    ids = [str(b.item_ids[r]) for r in history[-5:]]
    # -I -S: no user site, no PYTHONPATH, no .pth files (an editable install is one), no script folder;
    # then the site-packages folders alone, so numpy and onnxruntime import but seqrec_cli cannot.
    guard = textwrap.dedent(f"""
        import importlib.util, sys
        sys.path.extend({site.getsitepackages()!r})
        assert importlib.util.find_spec("seqrec_cli") is None, sys.path
        sys.modules["torch"] = None  # installed here, but the example must not need it
    """)
    script = tmp_path / "example.py"
    script.write_text(guard + readme_example())
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(path), *ids],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    expected = bundle_top_for_history(path, ids)
    assert [line[0] for line in lines] == expected
    assert not set(ids) & {line[0] for line in lines}


def bundle_top_for_history(path: Path, ids: list[str], k: int = 10) -> list[str]:
    b = open_bundle(path)
    rows = np.array([b.item_index[i] for i in ids], dtype=np.int64)
    out_rows, _ = b.run(pack([Query(history=rows, k=k, exclude=rows)], b))
    return [str(b.item_ids[r]) for r in out_rows[0, :k] if r > 0]


# Every encoder, plain and with time gaps + user vectors, on ML-100K; on Beauty (minutes per run on
# 2 cores) the attention one. One short epoch each (20 batches): parity does not depend on quality.
FULL_CASES = [("ml-100k", v) for v in VARIANTS] + [("beauty", "attention")]


@pytest.mark.slow
@pytest.mark.parametrize("dataset,variant", FULL_CASES)
def test_full_parity_on_1000_users_of_the_research_data(shared_data, tmp_path, dataset, variant):
    train(dataset, variant, tmp_path / "run", shared_data, extra=["trainer.limit_batches=20"])
    path = export_bundle(tmp_path / "run", tmp_path / "bundle")
    parity = compare(tmp_path / "run", path, n_users=1000)
    assert parity.users == min(1000, len(open_bundle(path).histories.index)), parity
    assert parity.agrees and parity.max_abs_diff <= 1e-5, parity.mismatched[:5]


def test_the_parity_check_catches_a_changed_score_or_order():
    items, scores = ["a", "b", "c", "d"], [3.0, 2.0, 2.000001, 1.0]
    assert disagreement(items, scores, items, scores) is None
    assert disagreement(items, scores, ["a", "c", "b", "d"], scores) is None  # b, c: a near-tie
    assert "ranks 1-1" in disagreement(items, scores, ["b", "a", "c", "d"], scores)
    assert "score at rank 4" in disagreement(items, scores, items, [3.0, 2.0, 2.000001, 1.001])
    assert disagreement(items, scores, items[:3], scores[:3]) == "4 items vs 3"
    assert disagreement(items, scores, ["a", "b", "c", "e"], scores) is None  # the last group may be cut


def test_a_pt2_archive_with_a_pickled_payload_is_refused(tmp_path_factory, tmp_path):
    import zipfile

    from seqrec_cli.serving.engine import ExportedSession

    source = bundle(tmp_path_factory, "attention", "pt2") / "model.pt2"
    ExportedSession(source, 1)  # the real archive loads
    flagged = tmp_path / "model.pt2"
    marked = 0
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(flagged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".json") and "/weights/" in info.filename and not marked:
                config = json.loads(data)
                for entry in config["config"].values():
                    entry["use_pickle"] = True
                    marked += 1
                data = json.dumps(config).encode()
            dst.writestr(info, data)
    assert marked, "the archive has no weights config to flag"
    with pytest.raises(UserError, match="holds a pickled payload"):
        ExportedSession(flagged, 1)
