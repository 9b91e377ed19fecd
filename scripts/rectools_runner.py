"""Train and evaluate RecTools 0.19's SASRecModel from a JSON spec: `python rectools_runner.py SPEC OUT`.

Run by the RecTools virtual environment's python (`benchmark.py peer --peers rectools` builds
.venv-rectools/): RecTools pins numpy < 2, so this file must not import seqrec_cli. The pure parts
(`leave_one_out`, `ranking_metrics`) import nothing beyond numpy / pandas, so our tests run them too.

SPEC: {"events": "<csv: user,item,position>", "threads": 2, "epochs": 10, "seed": 42,
       "model": {<SASRecModel keyword arguments>}}
OUT: JSON with the event counts, every user's validation / test target, per-epoch training seconds
(a Lightning callback: the epoch alone, not RecTools' data preparation around it), per-pass
validation seconds, the best validation epoch, its test metrics and the peak RSS.

Protocol, the same as ours: leave-one-out by position (last event test, the one before validation,
users with >= 3 events), one validation pass after every epoch, the weights of the best validation
NDCG@10 kept and evaluated on test with the validation item added to the history. Ranking: top 10
of RecTools' own catalogue (the items seen in training) with the user's history filtered out.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

K = 10


def peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def leave_one_out(events: pd.DataFrame) -> dict[str, Any]:
    """Training events and each evaluable user's validation / test target (original tokens as str),
    by position: a user's last event is the test target, the one before it the validation target."""
    ordered = events.sort_values(["user", "position"], kind="stable").reset_index(drop=True)
    rank_from_end = ordered.groupby("user", sort=False).cumcount(ascending=False)
    size = ordered.groupby("user", sort=False)["item"].transform("size")
    evaluable = size >= 3
    test, valid = ordered[evaluable & (rank_from_end == 0)], ordered[evaluable & (rank_from_end == 1)]
    return {
        "train": ordered[~(evaluable & (rank_from_end <= 1))],
        "valid_events": valid,
        "valid": dict(zip(valid["user"].astype(str), valid["item"].astype(str))),
        "test": dict(zip(test["user"].astype(str), test["item"].astype(str))),
    }


def training_windows(train: pd.DataFrame, max_len: int) -> dict[str, int]:
    """RecTools' training rows: one window per user with >= 2 training events (its
    train_min_user_interactions), the last max_len + 1 events, a target at each of its positions."""
    sizes = train.groupby("user").size().to_numpy()
    sizes = sizes[sizes >= 2]
    return {"train_users": int(len(sizes)), "train_targets": int(np.minimum(sizes - 1, max_len).sum())}


def ranking_metrics(recommended: pd.DataFrame, targets: dict[str, str], k: int = K) -> dict[str, float]:
    """HR@k and NDCG@k over all users of `targets` (a user with no recommendation counts as a miss)."""
    if not targets:
        return {f"hit@{k}": 0.0, f"ndcg@{k}": 0.0}
    recs = recommended.assign(user=recommended["user"].astype(str), item=recommended["item"].astype(str))
    hits = recs[recs["item"].to_numpy() == recs["user"].map(targets).to_numpy()]
    hits = hits[hits["rank"] <= k]
    return {
        f"hit@{k}": len(hits) / len(targets),
        f"ndcg@{k}": float((1.0 / np.log2(hits["rank"].to_numpy() + 1.0)).sum()) / len(targets),
    }


def _dataset(frame: pd.DataFrame) -> Any:
    from rectools import Columns
    from rectools.dataset import Dataset

    table = pd.DataFrame(
        {
            Columns.User: frame["user"].astype(str),
            Columns.Item: frame["item"].astype(str),
            Columns.Weight: 1.0,
            # Positions as seconds: RecTools orders a user's events by this column.
            Columns.Datetime: pd.to_datetime(frame["position"].to_numpy(), unit="s"),
        }
    )
    return Dataset.construct(table)


def _recommend(model: Any, dataset: Any, users: list[str]) -> pd.DataFrame:
    from rectools import Columns

    recs = model.recommend(users=users, dataset=dataset, k=K, filter_viewed=True)
    return recs.rename(columns={Columns.User: "user", Columns.Item: "item", Columns.Rank: "rank"})


def _timed_trainer(epoch_seconds: list, deterministic: bool) -> Any:
    """RecTools' own Trainer settings, plus a callback timing each training epoch."""
    from pytorch_lightning import Callback, Trainer

    class EpochTimer(Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.started = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            epoch_seconds.append(time.perf_counter() - self.started)

    return Trainer(
        max_epochs=1,
        min_epochs=1,
        deterministic=deterministic,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
        devices=1,
        accelerator="cpu",
        callbacks=[EpochTimer()],
    )


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(spec["threads"]))
    from pytorch_lightning import seed_everything
    from rectools.models import SASRecModel

    seed_everything(int(spec["seed"]), workers=True)
    events = pd.read_csv(spec["events"], dtype={"user": str, "item": str})
    split = leave_one_out(events)
    train = _dataset(split["train"])
    with_valid = _dataset(pd.concat([split["train"], split["valid_events"]]))
    epoch_seconds: list[float] = []
    deterministic = bool(spec["model"].get("deterministic"))
    model = SASRecModel(
        **spec["model"], epochs=1, get_trainer_func=lambda: _timed_trainer(epoch_seconds, deterministic)
    )
    valid_users, test_users = list(split["valid"]), list(split["test"])
    valid_seconds, history, best = [], [], (-1.0, 0, None)
    for epoch in range(1, int(spec["epochs"]) + 1):
        model.fit_partial(train, min_epochs=1, max_epochs=1)
        started = time.perf_counter()
        valid = ranking_metrics(_recommend(model, train, valid_users), split["valid"])
        valid_seconds.append(time.perf_counter() - started)
        history.append({"epoch": epoch, **valid})
        if valid[f"ndcg@{K}"] > best[0]:
            best = (valid[f"ndcg@{K}"], epoch, copy.deepcopy(model.lightning_model.torch_model.state_dict()))
    model.lightning_model.torch_model.load_state_dict(best[2])
    started = time.perf_counter()
    test = ranking_metrics(_recommend(model, with_valid, test_users), split["test"])
    return {
        "counts": {
            "users": int(events["user"].nunique()),
            "items": int(events["item"].nunique()),
            "interactions": len(events),
        },
        "catalogue_items": int(split["train"]["item"].nunique()),
        "valid_targets": split["valid"],
        "test_targets": split["test"],
        **training_windows(split["train"], int(spec["model"]["session_max_len"])),
        "epoch_seconds": epoch_seconds,
        "valid_seconds": valid_seconds,
        "test_seconds": time.perf_counter() - started,
        "history": history,
        "best_epoch": best[1],
        "test": test,
        "n_params": sum(p.numel() for p in model.lightning_model.torch_model.parameters()),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rectools": __import__("rectools").__version__,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: rectools_runner.py SPEC.json OUT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    os.environ.setdefault("OMP_NUM_THREADS", str(spec["threads"]))
    result = run(spec)
    result["peak_rss_kb"] = peak_rss_kb()
    Path(argv[1]).write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
