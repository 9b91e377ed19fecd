"""A deterministic synthetic dataset with structure a sequential model can learn.

Item popularity follows a Zipf law (so the popularity baseline is a real baseline), and each item
has one hidden successor: with probability `sequential_strength` the next event is the successor
of the previous one, otherwise a draw from the popularity law. A model that learns the transition
table beats popularity by a wide margin; one that does not, does not. Same settings, same data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqrec_cli.config.schema import SyntheticConfig


def generate_events(cfg: SyntheticConfig) -> pd.DataFrame:
    """Events as columns `user`, `item`, `time` (ids from 1), in per-user time order."""
    rng = np.random.default_rng(cfg.seed)
    n_users, n_items = cfg.n_users, cfg.n_items
    popularity = 1.0 / np.arange(1, n_items + 1) ** cfg.zipf_exponent
    popularity /= popularity.sum()
    # Shuffle which item ids are popular so popularity is not simply "small id".
    item_of_rank = rng.permutation(n_items) + 1
    successor = np.zeros(n_items + 1, dtype=np.int64)
    successor[1:] = rng.permutation(n_items) + 1

    extra = rng.poisson(cfg.mean_length - cfg.min_length, size=n_users)
    lengths = cfg.min_length + extra
    max_len = int(lengths.max())
    seqs = np.zeros((n_users, max_len), dtype=np.int64)
    seqs[:, 0] = item_of_rank[rng.choice(n_items, size=n_users, p=popularity)]
    for t in range(1, max_len):
        follow = rng.random(n_users) < cfg.sequential_strength
        drawn = item_of_rank[rng.choice(n_items, size=n_users, p=popularity)]
        seqs[:, t] = np.where(follow, successor[seqs[:, t - 1]], drawn)

    mask = np.arange(max_len)[None, :] < lengths[:, None]
    users = np.broadcast_to(np.arange(1, n_users + 1)[:, None], seqs.shape)[mask]
    start = rng.integers(1_500_000_000, 1_600_000_000, size=n_users)
    times = (start[:, None] + 60 * np.arange(max_len)[None, :])[mask]
    return pd.DataFrame({"user": users.astype(np.int64), "item": seqs[mask], "time": times})
