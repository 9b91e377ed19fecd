"""Helpers shared by the peer-benchmark tests (test_peer.py, test_peer_rectools.py): a small
MovieLens-100K-like file with timestamp ties, the command-line settings, a canned side of a row."""

from __future__ import annotations

import argparse
from pathlib import Path

from seqrec_cli.config.schema import DatasetConfig

# user, item, rating, timestamp in file order. Ties at the end of users 1 and 2 decide the test and
# validation targets: our rule keeps file order (user 1: ... 40 then 30; user 2: 50 then 20 then 10).
U_DATA = [
    (1, 10, 5, 100),
    (1, 20, 4, 200),
    (1, 40, 3, 300),
    (1, 30, 5, 300),
    (2, 30, 4, 50),
    (2, 50, 3, 70),
    (2, 20, 2, 70),
    (2, 10, 1, 70),
    (3, 20, 5, 900),
    (3, 10, 4, 800),
    (3, 50, 3, 950),
    (3, 40, 2, 990),
    (4, 40, 1, 10),
    (4, 10, 2, 10),  # two events: trains only, never a target
]


def ml100k_like(tmp_path: Path) -> DatasetConfig:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in U_DATA))
    return DatasetConfig(
        name="ml-100k",
        source="movielens",
        path=str(folder),
        min_user_count=1,
        min_item_count=1,
        cache_dir=str(tmp_path / "cache"),
    )


def args(**kw):
    base = dict(epochs=7, patience=3, threads=2, seed=5, extra=[])
    return argparse.Namespace(**{**base, **kw})


def side(s_per_epoch, eval_s, rss, ndcg, sequences, targets=100_000):
    return {
        "epochs_run": 10,
        "best_epoch": 7,
        "s_per_epoch": s_per_epoch,
        "train_sequences": sequences,
        "train_targets": targets,
        "eval_s_per_pass": eval_s,
        "eval_users": 1000,
        "peak_rss_gb": rss,
        "test_ndcg@10": ndcg,
        "test_hr@10": 2 * ndcg,
    }
