"""The peer benchmark's data: the same events and the same leave-one-out split on both sides.

RecBole reads atomic files written here whose time field is each event's position in our order
(exact integer timestamp, ties in file order; sequence files: position in the line), so its
leave-one-out picks the same validation and test targets; `compare_splits` checks that it did.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def ordered_events(cfg: Any) -> pd.DataFrame:
    """Our reader's events with `position` = rank in our time order.

    Our pipeline sorts each user's events by exact timestamp with ties in file order (a stable
    sort); a stable argsort of all timestamps gives positions consistent with that within every
    user. Without a time column the file order is the time order. Positions are small distinct
    integers, exact in RecBole's float32, so RecBole's own sort reproduces our order.
    """
    from seqrec_cli.data.sources import locate, read_events

    events = read_events(cfg, locate(cfg))
    if "time" in events.columns:
        order = np.argsort(events["time"].to_numpy(), kind="stable")
    else:
        order = np.arange(len(events))
    position = np.empty(len(events), dtype=np.int64)
    position[order] = np.arange(len(events))
    return pd.DataFrame({"user": events["user"], "item": events["item"], "position": position})


def write_atomic(events: pd.DataFrame, folder: Path, name: str) -> Path:
    """Write `folder/name/name.inter` (RecBole's atomic format) with positions as the time field."""
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.inter"
    table = pd.DataFrame(
        {
            "user_id:token": events["user"].astype(str),
            "item_id:token": events["item"].astype(str),
            "timestamp:float": events["position"].astype(np.int64),
        }
    )
    tmp = path.with_name(path.name + ".tmp")
    table.to_csv(tmp, sep="\t", index=False)
    os.replace(tmp, path)
    return path


def leave_one_out_targets(events: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Validation and test target per user as RecBole's LS split picks them from an atomic file.

    RecBole sorts by (user, time) and gives each user's last event to test and the one before to
    validation; used in the tests to show the written positions reproduce our targets.
    """
    ordered = events.sort_values(["user", "position"], kind="stable")
    valid: dict[str, str] = {}
    test: dict[str, str] = {}
    for user, items in ordered.groupby("user", sort=False)["item"]:
        seq = items.astype(str).tolist()
        if len(seq) >= 3:
            valid[str(user)], test[str(user)] = seq[-2], seq[-1]
    return {"valid": valid, "test": test}


def our_split(cfg: Any) -> dict[str, Any]:
    """Filtered counts and every evaluated user's targets from our own pipeline, in original ids."""
    from seqrec_cli.data import load

    splits, summary = load(cfg)
    data = splits.data

    def targets(split: Any) -> dict[str, str]:
        return {str(data.user_ids[u]): str(data.item_ids[t - 1]) for u, t in zip(split.users, split.targets)}

    return {
        "counts": {"users": summary["users"], "items": summary["items"], "interactions": summary["interactions"]},
        "valid": targets(splits.valid),
        "test": targets(splits.test),
    }


def compare_splits(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Sentences naming every difference between our split and RecBole's (empty = identical)."""
    problems = [
        f"{key}: ours {ours['counts'][key]}, RecBole {theirs['counts'][key]}"
        for key in ("users", "items", "interactions")
        if ours["counts"][key] != theirs["counts"][key]
    ]
    for split in ("valid", "test"):
        mine, other = ours[split], theirs[split]
        differ = [u for u in mine if other.get(u) != mine[u]] + [u for u in other if u not in mine]
        if differ:
            problems.append(f"{split} targets differ for {len(differ)} users (e.g. user {differ[0]})")
    return problems


def runner_figures(result: dict[str, Any]) -> dict[str, Any]:
    """The figures every peer runner's result.json reports the same way, in `peer.run_ours`'s
    shape (the epoch, training-set and batch figures differ by peer and are added by its side)."""
    epochs, passes = len(result["epoch_seconds"]), result["valid_seconds"]
    return {
        "epochs_run": epochs,
        "best_epoch": result["best_epoch"],
        "s_per_epoch": sum(result["epoch_seconds"]) / max(epochs, 1),
        "eval_s_per_pass": sum(passes) / max(len(passes), 1),
        "peak_rss_gb": result["peak_rss_kb"] / 2**20,
        "test_ndcg@10": result["test"]["ndcg@10"],
        "test_hr@10": result["test"]["hit@10"],
        "counts": result["counts"],
        "n_params": result["n_params"],
        "threads": result["threads"],
        "torch": result["torch"],
    }
