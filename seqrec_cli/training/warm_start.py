"""`trainer.init_from`: start a new run from a finished run's weights, on other data.

Yesterday's model, today's data: new items, new users, items gone. The encoder's weights are
copied as they are; the rows of the item table (and of the user-vector table) are matched by
original id:
- an item (user) the parent knew keeps its learned row exactly;
- a new one gets the mean of the parent's rows plus Gaussian noise of std `model.init_std`
  (seeded by `trainer.seed`): a row that scores like an average item until training moves it,
  rather than a random one that scores like noise;
- one absent from the new data is dropped with the catalogue.
The optimizer, learning rate, epochs and patience are the new run's own. Settings that change
what the weights mean or their shapes must match the parent, and every differing key is named.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from seqrec_cli.config.schema import TrainConfig
from seqrec_cli.errors import UserError
from seqrec_cli.training.checkpoint import load_best

log = logging.getLogger(__name__)

# What the copied weights mean: a parent that differs in any of these cannot seed this run.
MUST_MATCH = {
    "model": ("embedding_dim", "max_len", "user_embedding"),
    "encoder": (
        "name",
        "num_layers",
        "num_heads",
        "hidden_size",
        "ffn_size",
        "block",
        "pre_norm",
        "time_features",
        "input",
    ),
}
# Tables with one row per item or user, realigned by id (the one-hot input table of encoder.input=one_hot too).
ROW_TABLES = {"item_embedding.weight": "items", "input_embedding.weight": "items", "user_embedding.weight": "users"}


@dataclass
class Parent:
    run_dir: Path
    ckpt: dict[str, Any]
    lineage: list[str]  # the parent first, then its parent, ...


def open_parent(path: str | Path, cfg: TrainConfig) -> Parent:
    """The finished run `path`, checked against this run's settings before anything is built."""
    run_dir = Path(path).expanduser()
    if not run_dir.is_dir():
        raise UserError(f"trainer.init_from={path}: no such run directory.")
    best, metrics = run_dir / "checkpoints" / "best.pt", run_dir / "metrics.json"
    if not best.is_file() or not metrics.is_file():
        raise UserError(
            f"trainer.init_from={path} is not a finished run (it needs checkpoints/best.pt and metrics.json): "
            "let it finish, or resume it with trainer.resume."
        )
    ckpt = load_best(best)
    saved, now = ckpt["config"], asdict(cfg)
    differing = [
        f"{g}.{k}" for g, keys in MUST_MATCH.items() for k in keys if saved.get(g, {}).get(k, now[g][k]) != now[g][k]
    ]
    if differing:
        raise UserError(
            f"Cannot start from {path}: its weights were trained with different {', '.join(differing)} "
            "(set them as the parent had them)."
        )
    return Parent(run_dir, ckpt, [str(run_dir.resolve()), *_lineage(metrics)])


def _lineage(metrics: Path) -> list[str]:
    try:
        parent = json.loads(metrics.read_text()).get("init_from") or {}
    except (OSError, ValueError):
        return []
    return list(parent.get("lineage", []))


def transfer(
    parent: Parent,
    model: torch.nn.Module,
    item_ids: Sequence[Any],
    user_ids: Optional[Sequence[Any]],
    cfg: TrainConfig,
) -> dict[str, Any]:
    """Load the parent's weights into `model` (built for the new data); returns the provenance."""
    old, new = parent.ckpt["model"], model.state_dict()
    wrong = [k for k in new if k not in ROW_TABLES and (k not in old or old[k].shape != new[k].shape)]
    if wrong:
        raise UserError(f"Cannot start from {parent.run_dir}: its weights do not fit this model ({', '.join(wrong)}).")
    ids = {
        "items": (parent.ckpt["item_ids"], list(item_ids)),
        "users": (parent.ckpt.get("user_ids") or [], list(user_ids or [])),
    }
    gen = torch.Generator().manual_seed(cfg.trainer.seed)
    counts: dict[str, Any] = {}
    state = {k: v.clone() for k, v in old.items() if k not in ROW_TABLES}
    for key, kind in ROW_TABLES.items():
        if key in new:
            state[key], counts[kind] = _aligned_rows(old[key], new[key], *ids[kind], cfg.model.init_std, gen)
    if counts["items"]["kept"] == 0 and not cfg.trainer.init_from_partial:
        raise UserError(
            f"The new data shares no item with {parent.run_dir}: nothing but the encoder can be transferred "
            "(set trainer.init_from_partial=true to start from the encoder alone)."
        )
    model.load_state_dict(state)
    log.info(
        "Started from %s: %d items kept, %d new, %d dropped%s.",
        parent.run_dir,
        counts["items"]["kept"],
        counts["items"]["added"],
        counts["items"]["dropped"],
        "; users {kept} kept, {added} new, {dropped} dropped".format(**counts["users"]) if "users" in counts else "",
    )
    return {"run": str(parent.run_dir.resolve()), "lineage": parent.lineage, **counts}


def _aligned_rows(
    old: torch.Tensor,
    new: torch.Tensor,
    old_ids: Sequence[Any],
    new_ids: Sequence[Any],
    std: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, dict[str, int]]:
    """Row i + 1 of the result belongs to new_ids[i]; row 0 (padding / no vector) stays zero."""
    index = {str(v): i + 1 for i, v in enumerate(old_ids)}
    src = np.array([index.get(str(v), 0) for v in new_ids], dtype=np.int64)
    known = torch.as_tensor(src > 0)
    out = torch.zeros_like(new)
    rows = old[1:] if len(old) > 1 else old.new_zeros(1, old.shape[1])
    fresh = rows.mean(0) + std * torch.randn(len(new_ids), old.shape[1], generator=gen, dtype=old.dtype)
    out[1:] = torch.where(known[:, None], old[torch.as_tensor(src)], fresh)
    kept = int(known.sum())
    return out, {"kept": kept, "added": len(new_ids) - kept, "dropped": len(old_ids) - kept}
