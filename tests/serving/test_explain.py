"""Occlusion explanations: on data where the next item is caused by one earlier item, the
explanation names that item; the bundle's explanations equal the eager model's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from serving_support import bundle, trained_runs
from seqrec_cli.config.apps import RecommendAppConfig
from seqrec_cli.cli.recommend import recommend
from seqrec_cli.reporting.runs import open_run
from seqrec_cli.serving.engine import open_bundle
from seqrec_cli.serving.explain import bundle_score_fn, explain, occluded, torch_score_fn

TRIGGERS = list(range(1, 9))  # trigger t causes item 100 + t a few steps later
NOISE = list(range(200, 260))


def causal_events(n_users: int = 800, seed: int = 0) -> pd.DataFrame:
    """Each user, three times: noise, a trigger t, 1-3 noise items, t's effect 100 + t, then 300 + t
    (so the validation target is predictable too and picks the best epoch)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        seq: list[int] = []
        for _ in range(3):  # random amounts of noise, so the trigger sits at no fixed distance
            t = int(rng.choice(TRIGGERS))
            seq += noise(rng, 1, 3) + [t] + noise(rng, 1, 3) + [100 + t, 300 + t]
        rows += [(user, item, time) for time, item in enumerate(seq)]
    return pd.DataFrame(rows, columns=["user", "item", "time"])


def noise(rng: np.random.Generator, low: int, high: int) -> list[int]:
    return [int(v) for v in rng.choice(NOISE, rng.integers(low, high + 1))]


@pytest.fixture(scope="module")
def causal_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("causal")
    causal_events().to_csv(root / "events.csv", index=False)
    result = run_cli(
        [
            "dataset=csv",
            "dataset.path=events.csv",
            "dataset.user_col=user",
            "dataset.item_col=item",
            "dataset.time_col=time",
            "dataset.min_user_count=1",
            "dataset.min_item_count=1",
            "dataset.use_cache=false",
            "model.embedding_dim=32",
            "model.max_len=10",
            "encoder.dropout=0.1",
            "trainer.max_epochs=12",
            "trainer.patience=12",
            "optimizer.lr=0.005",
            "trainer.batch_size=64",
            "trainer.progress=false",
            "trainer.num_threads=1",
            "hydra.run.dir=run",
        ],
        root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run"


def test_the_explanation_names_the_item_that_caused_the_recommendation(causal_run):
    for trigger in (2, 5):
        history = ["201", "233", str(trigger), "250", "217"]
        rows = recommend(RecommendAppConfig(run=str(causal_run), history=history, k=1, explain=True, device="cpu"))
        assert str(rows[0]["item"]) == str(100 + trigger), rows
        assert rows[0]["because"].split(" ")[0] == str(trigger), rows


def test_bundle_explanations_equal_the_eager_models(tmp_path_factory):
    path = bundle(tmp_path_factory, "attention")
    b = open_bundle(path)
    model = open_run(trained_runs(tmp_path_factory, ("attention",))["attention"], "cpu").model
    history, _, _ = b.histories.of(1)
    window = history[-b.max_len :]
    targets = np.array([3, 9, 17], dtype=np.int64)
    eager = explain(torch_score_fn(model), window, None, 0, targets, top=len(window))
    exported = explain(bundle_score_fn(b), window, None, 0, targets, top=len(window))
    for e, x in zip(eager, exported):
        # near-equal contributions may swap places; the large ones agree item by item
        np.testing.assert_allclose([r.contribution for r in x], [r.contribution for r in e], atol=1e-5)


def test_occluded_rows_drop_one_item_each():
    items, lengths, gaps = occluded(np.array([4, 5, 6]), np.array([1, 7, 9]))
    assert items.tolist() == [[4, 5, 6], [5, 6, 0], [4, 6, 0], [4, 5, 0]]
    assert lengths.tolist() == [3, 2, 2, 2] and gaps.tolist() == [[1, 7, 9], [7, 9, 0], [1, 9, 0], [1, 7, 0]]
    items, lengths, _ = occluded(np.array([4]), None)
    assert items.tolist() == [[4], [0]] and lengths.tolist() == [1, 1]  # the empty history: padding alone
