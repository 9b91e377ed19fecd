"""The item hold-out protocol for cold start (`dataset.split.cold_items`).

A seeded random fraction of the catalogue is held out: its events are removed from every
training input and target, while each user's last two events stay where they were (the
validation and test targets of leave-one-out), whatever their item. A user whose target is a
held-out item is then a cold case: the model has never seen that item trained on. Users left
with no training event before their targets keep only their non-held-out events and train on
them without being evaluated, so no held-out event is ever trained on.

Done on the CSR arrays before leave-one-out, so the split itself is unchanged code.
"""

from __future__ import annotations

import numpy as np

from seqrec_cli.data.preprocess import Interactions


def held_out_items(n_items: int, fraction: float, seed: int) -> np.ndarray:
    """Bool [n_items + 1]: the held-out items (a seeded draw without replacement)."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(np.arange(1, n_items + 1), size=int(round(fraction * n_items)), replace=False)
    mask = np.zeros(n_items + 1, dtype=bool)
    mask[chosen] = True
    return mask


def hold_out(data: Interactions, fraction: float, seed: int) -> tuple[Interactions, dict]:
    """`data` without the held-out items' events outside the last two events of each user."""
    cold = held_out_items(data.n_items, fraction, seed)
    lengths = data.lengths
    user_of = np.repeat(np.arange(data.n_users), lengths)
    position = np.arange(data.n_interactions) - np.repeat(data.offsets[:-1], lengths)
    from_end = np.repeat(lengths, lengths) - position  # 1 = last event
    is_cold = cold[data.items]
    is_target = (from_end <= 2) & (np.repeat(lengths, lengths) >= 3)
    # A user evaluated after the hold-out needs a warm event before the targets.
    warm_prefix = np.bincount(user_of[~is_target & ~is_cold], minlength=data.n_users)
    keep_targets = is_target & (warm_prefix[user_of] > 0)
    keep = keep_targets | ~is_cold
    counts = np.bincount(user_of[keep], minlength=data.n_users)
    offsets = np.zeros(data.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    out = Interactions(
        offsets=offsets,
        items=data.items[keep],
        times=data.times[keep] if data.times is not None else None,
        user_ids=data.user_ids,
        item_ids=data.item_ids,
    )
    details = {
        "cold_items": int(cold.sum()),
        "cold_item_seed": seed,
        "held_out_training_events": int((is_cold & ~keep).sum()),
    }
    return out, details
