"""A finished training run, opened again: its config, its best weights, its data, its ids.

`seqrec-eval` and `seqrec-recommend` both start from a run directory. The checkpoint `best.pt`
carries everything the weights depend on: the run's full config (a plain dict of `TrainConfig`)
and the original item ids (index i = item i + 1). The data is read again through the same
pipeline (and its cache) and then numbered exactly as the model knows its items, so a changed or
different file can never silently shift which item a score belongs to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqrec_cli import data as data_module
from seqrec_cli import models
from seqrec_cli.config.convert import to_train_config
from seqrec_cli.config.feature_checks import uses_features
from seqrec_cli.config.schema import DatasetConfig, TrainConfig
from seqrec_cli.data import Interactions, SequenceSplits
from seqrec_cli.data.batches import SideInputs, gap_buckets
from seqrec_cli.data.splits import leave_one_out
from seqrec_cli.errors import UserError
from seqrec_cli.training.runtime import select_device
from seqrec_cli.training.checkpoint import load_best

log = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    run_dir: Path
    cfg: TrainConfig
    model: models.SequentialRecommender  # best weights, eval mode, on `device`
    item_ids: np.ndarray  # original item ids; index i is item i + 1
    epoch: int  # the epoch the best weights come from
    device: torch.device
    user_ids: Optional[np.ndarray] = None  # original ids of the users with a vector (row i + 1)

    @property
    def use_amp(self) -> bool:
        return self.cfg.trainer.amp and self.device.type == "cuda"


def find_run(path: str | Path) -> Path:
    """`run=DIR`, or `run=last`: the run under ./outputs whose best.pt was written most recently."""
    run_dir = Path(path).expanduser()
    if run_dir.name != "last" or run_dir.exists():
        return run_dir
    outputs = run_dir.parent / "outputs"
    found = sorted(outputs.rglob("checkpoints/best.pt"), key=lambda p: p.stat().st_mtime) if outputs.is_dir() else []
    if not found:
        raise UserError(f"run=last found no trained run under {outputs}: train one first, or name its directory.")
    log.info("run=last: %s", found[-1].parent.parent)
    return found[-1].parent.parent


def open_run(path: str | Path, device: str = "auto") -> TrainedRun:
    """Rebuild the model of a run directory (or `last`) from `checkpoints/best.pt`, ready for inference."""
    run_dir = find_run(path)
    if not run_dir.is_dir():
        raise UserError(f"Run directory not found: {run_dir}.")
    best = run_dir / "checkpoints" / "best.pt"
    if not best.is_file():
        raise UserError(
            f"{run_dir} holds no trained model (checkpoints/best.pt is missing): name a seqrec-train run "
            "directory whose first validation has finished."
        )
    ckpt = load_best(best)
    cfg = _train_config(ckpt["config"], best)
    cfg = replace(cfg, dataset=_resolve_dataset_path(cfg.dataset, run_dir))
    item_ids = np.asarray(ckpt["item_ids"])
    user_ids = np.asarray(ckpt["user_ids"]) if cfg.model.user_embedding else None
    if cfg.model.user_embedding and "user_ids" not in ckpt:
        raise UserError(f"{best} has no 'user_ids' entry although its model has user vectors.")
    torch_device = select_device(device, key="device")
    meta = ckpt.get("item_features")  # vocabularies and scalers of a model with item features
    if uses_features(cfg.model) and meta is None:
        raise UserError(f"{best} has no 'item_features' entry although its model uses item features.")
    n_user_rows = len(user_ids) + 1 if user_ids is not None else 0
    model = models.build(
        cfg.model, cfg.encoder, len(item_ids), n_user_rows, objective=cfg.objective.name, feature_meta=meta
    )
    model.load_state_dict(ckpt["model"])
    model.to(torch_device).eval()
    return TrainedRun(run_dir, cfg, model, item_ids, int(ckpt.get("epoch", 0)), torch_device, user_ids)


def side_inputs_for(run: TrainedRun, data: Interactions) -> SideInputs:
    """The optional model inputs of `data` for this run's model: time gaps from its timestamps,
    and each user's vector row found by original id (0, the sequence alone, when the model has
    no vector for that user)."""
    rows = None
    if run.user_ids is not None:
        index = IdIndex(run.user_ids)
        rows = np.array(
            [(index.get(u) + 1) if index.get(u) is not None else 0 for u in data.user_ids.tolist()], dtype=np.int64
        )
    return SideInputs(gaps=gap_buckets(data) if run.model.uses_time_gaps else None, user_rows=rows)


def _train_config(saved: dict[str, Any], path: Path) -> TrainConfig:
    """The checkpoint's config on today's schema: keys added since then take their defaults."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), saved)
        return to_train_config(OmegaConf.to_object(merged))
    except OmegaConfBaseException as exc:
        reason = str(exc).splitlines()[0]
        raise UserError(f"The config stored in {path} does not fit this version of seqrec-cli ({reason}).") from None


def _resolve_dataset_path(cfg: DatasetConfig, run_dir: Path) -> DatasetConfig:
    """A relative `dataset.path` was relative to where training ran (Hydra records that cwd)."""
    if not cfg.path or Path(cfg.path).expanduser().is_absolute() or Path(cfg.path).exists():
        return cfg
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    try:
        train_cwd = OmegaConf.load(hydra_yaml).hydra.runtime.cwd
    except (OSError, OmegaConfBaseException):
        return cfg
    candidate = Path(train_cwd) / cfg.path
    return replace(cfg, path=str(candidate)) if candidate.exists() else cfg


def other_dataset(cfg: DatasetConfig, path: str, **reader: Optional[str]) -> DatasetConfig:
    """The run's dataset settings pointed at another file: same reader settings and filters.

    `reader` holds column / separator overrides; None keeps the run's value. A bundled dataset's
    reader settings (MovieLens columns) carry over, so a newer MovieLens ratings file just works.
    """
    if not Path(path).expanduser().is_file():
        raise UserError(f"Dataset file not found: {path}.")
    changes = {k: v for k, v in reader.items() if v is not None}
    return replace(
        cfg, source="csv", path=str(Path(path).expanduser()), name=f"{cfg.name}-{Path(path).stem}", **changes
    )


def load_splits(run: TrainedRun, dataset: Optional[DatasetConfig] = None) -> tuple[SequenceSplits, dict[str, Any]]:
    """Splits of the run's data (or of `dataset`), items numbered as the model numbers them.

    Returns the splits and a summary. Events of items the model never saw are dropped (they
    cannot be scored), and said so; a user's remaining events keep their order.
    """
    cfg = dataset or run.cfg.dataset
    splits, summary = data_module.load(cfg)
    inter = splits.data
    if _same_ids(inter.item_ids, run.item_ids):
        return splits, {**summary, "unknown_item_events": 0}
    index = IdIndex(run.item_ids)
    mapping = np.zeros(inter.n_items + 1, dtype=np.int64)
    mapping[1:] = [index.get(v) + 1 if index.get(v) is not None else 0 for v in inter.item_ids.tolist()]
    aligned, dropped = _relabel(inter, mapping, run.item_ids)
    if dropped:
        log.warning(
            "%d of %d events are of items the model never saw; they are left out.", dropped, inter.n_interactions
        )
    if dataset is None:
        log.warning("The run's dataset has changed since training; items are matched by their original ids.")
    new_splits = leave_one_out(aligned)
    summary = {
        **summary,
        "items": aligned.n_items,
        "interactions": aligned.n_interactions,
        "unknown_item_events": dropped,
        "split": {"kind": "leave_one_out", **new_splits.summary()},
    }
    return new_splits, summary


def _same_ids(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and [str(x) for x in a.tolist()] == [str(x) for x in b.tolist()]


def _relabel(inter: Interactions, mapping: np.ndarray, item_ids: np.ndarray) -> tuple[Interactions, int]:
    """Renumber items by `mapping` (0 = unknown, dropped) and rebuild the CSR offsets."""
    new_items = mapping[inter.items]
    keep = new_items > 0
    user_of = np.repeat(np.arange(inter.n_users), inter.lengths)
    counts = np.bincount(user_of[keep], minlength=inter.n_users)
    offsets = np.zeros(inter.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    aligned = Interactions(
        offsets=offsets,
        items=new_items[keep].astype(np.int32),
        times=inter.times[keep] if inter.times is not None else None,
        user_ids=inter.user_ids,
        item_ids=np.asarray(item_ids),
    )
    return aligned, int((~keep).sum())


class IdIndex:
    """Original ids (as stored: ints or strings) -> 0-based positions, looked up by their text.

    Command lines and files give ids as text; comparing text makes `42` find the integer id 42
    and `"tt0114709"` a string id, without guessing types.
    """

    def __init__(self, original_ids: Iterable[Any]) -> None:
        self._pos = {str(v): i for i, v in enumerate(np.asarray(original_ids).tolist())}

    def get(self, original_id: Any) -> Optional[int]:
        return self._pos.get(str(original_id).strip())

    def find(self, original_ids: Iterable[Any]) -> tuple[list[int], list[str]]:
        """Positions of the known ids (in the given order) and the unknown ids as given."""
        found, unknown = [], []
        for v in original_ids:
            pos = self.get(v)
            if pos is None:
                unknown.append(str(v))
            else:
                found.append(pos)
        return found, unknown
