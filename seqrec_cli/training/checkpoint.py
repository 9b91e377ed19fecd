"""Checkpoints: the file format's one owner (write, read, check).

A checkpoint holds only tensors and plain Python values, so it loads with
`torch.load(weights_only=True)`, which cannot run code from a file someone sent you. It is written
atomically and durably (`seqrec_cli.io.atomic`): a crash or power loss mid-write leaves the
previous complete file.

Two kinds exist in a run directory:
- `best.pt`: the best validation weights plus what inference needs (config, original item ids);
- `last.pt`: everything a resumed run needs to continue exactly (weights, optimizer, loop state,
  RNG streams) and the best weights so far, so the pair can never disagree after a kill.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import torch

from seqrec_cli.errors import UserError
from seqrec_cli.io.atomic import atomic_write

BEST_KEYS = ("model", "config", "item_ids")
RESUME_KEYS = ("model", "optimizer", "loop", "rng", "config")
ZIP_MAGIC = b"PK\x03\x04"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, lambda fh: torch.save(payload, fh), _tensor_bytes(payload))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint`; anything else is one clear `UserError`."""
    if not path.is_file():
        raise UserError(f"Checkpoint not found: {path}.")
    size = path.stat().st_size
    if size == 0:
        raise UserError(
            f"Checkpoint {path} is empty (0 bytes): its write was cut off, e.g. by a power loss; "
            "use another checkpoint or train again."
        )
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != ZIP_MAGIC:  # torch.save writes a zip archive; a truncated one still starts like one
        raise UserError(
            f"{path} is not a checkpoint: it was not written by torch.save ({size} bytes of something else)."
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "Unsupported" in line), lines[0] if lines else "unknown content")
        raise UserError(
            f"Refusing to load {path}: it holds more than tensors and plain values ({reason.rstrip('.')})."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"Checkpoint {path} is truncated or corrupt ({first}).") from None
    if not isinstance(payload, dict):
        raise UserError(f"{path} is not a checkpoint of seqrec-train: it holds a {type(payload).__name__}, not a dict.")
    return payload


def load_resume_state(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """`last.pt` for `trainer.resume`; a `best.pt` (weights only) is named as the mistake it is."""
    ckpt = load_checkpoint(path, map_location)
    missing = _missing(ckpt, RESUME_KEYS)
    if missing and not _missing(ckpt, BEST_KEYS):
        raise UserError(
            f"{path} holds best weights only, not a resumable training state: resume from the run "
            "directory or its checkpoints/last.pt."
        )
    if missing:
        raise UserError(f"{path} is not a resumable checkpoint of seqrec-train (no {', '.join(missing)}).")
    return ckpt


def load_best(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """`best.pt` for evaluation, recommendation and export."""
    ckpt = load_checkpoint(path, map_location)
    missing = _missing(ckpt, BEST_KEYS)
    if missing:
        raise UserError(f"{path} has no {missing[0]!r} entry: it was not written by this version of seqrec-train.")
    return ckpt


def _missing(ckpt: dict[str, Any], keys: Iterable[str]) -> list[str]:
    return [k for k in keys if k not in ckpt]


def _tensor_bytes(obj: Any) -> int:
    """Roughly the size torch.save will write: the bytes of every tensor inside `obj`."""
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


# ---- what the payloads hold -------------------------------------------------------------------


def best_payload(
    weights: dict,
    epoch: int,
    valid: dict,
    *,
    config: dict,
    item_ids: list,
    user_ids: Optional[list],
    data: dict[str, Any],
) -> dict[str, Any]:
    """best.pt: weights plus what inference needs without the run's data at hand."""
    payload = {
        "model": weights,
        "epoch": epoch,
        "valid": valid,
        "config": config,
        # Original item ids (index i = item i + 1) so a checkpoint alone can report
        # recommendations in the user's own ids.
        "item_ids": item_ids,
        "data": data,
    }
    if user_ids is not None:
        # Original ids of the users with a vector (row i + 1), so eval / recommend find them by id.
        payload["user_ids"] = user_ids
    return payload


def resume_payload(
    model: dict,
    optimizer: dict,
    loop: dict,
    *,
    rng: dict,
    config: dict,
    best: dict,
    data: dict[str, Any],
) -> dict[str, Any]:
    """last.pt: the whole training state. `best` ({"model", "epoch"}) travels with it, so a kill
    between writing best.pt and last.pt can never leave best weights from an epoch the loop state
    has not reached."""
    return {
        "model": model,
        "optimizer": optimizer,
        "loop": loop,
        "rng": rng,
        "config": config,
        "best": best,
        "data": data,
    }


def data_fingerprint(n_users: int, item_ids: Any, offsets: Any, items: Any) -> dict[str, Any]:
    """What the weights' rows mean: counts plus a digest of the id map and every event's item."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update("\x1f".join(str(v) for v in list(item_ids)).encode())
    digest.update(memoryview(np.ascontiguousarray(offsets, dtype=np.int64)).cast("B"))
    digest.update(memoryview(np.ascontiguousarray(items, dtype=np.int32)).cast("B"))
    return {
        "users": int(n_users),
        "items": len(item_ids),
        "interactions": int(len(items)),
        "digest": digest.hexdigest(),
    }


# ---- resume checks: everything is checked before the run directory is touched -----------------

# Settings that change what a checkpoint's weights or its loop state mean; a resume must match.
RESUME_MUST_MATCH_GROUPS = ("dataset", "model", "encoder", "objective", "loss")
RESUME_MUST_MATCH_KEYS = (
    ("optimizer", "name"),  # the optimizer state of Adam is not SGD's
    ("trainer", "seed"),  # the saved RNG streams are continued; a new seed would not be used
    ("trainer", "monitor"),  # the best score so far is of the monitored metric
    ("eval", "mask_history"),  # the best score so far was measured with that masking
)


def check_resume(
    path: Path,
    ckpt: dict[str, Any],
    config: dict[str, Any],
    defaults: dict[str, Any],
    data: dict[str, Any],
    shapes: dict[str, tuple],
) -> None:
    """Refuse a resume whose settings, data or weight shapes differ from the checkpoint's."""
    differing = _differing_settings(ckpt["config"], config, defaults)
    if differing:
        raise UserError(f"Cannot resume from {path}: its run used different settings for {', '.join(differing)}.")
    saved = ckpt.get("data")
    if saved is not None and saved != data:
        changes = (
            ", ".join(
                f"{k} {saved.get(k)} -> {data[k]}"
                for k in ("users", "items", "interactions")
                if saved.get(k) != data[k]
            )
            or "same counts, different events"
        )
        raise UserError(
            f"Cannot resume from {path}: the data has changed since that run started ({changes}); "
            "resume needs the data it was trained on: start a new run for the new data."
        )
    weights = ckpt["model"]
    wrong = [k for k, shape in shapes.items() if k not in weights or tuple(weights[k].shape) != shape]
    if wrong or set(weights) - set(shapes):
        raise UserError(
            f"Cannot resume from {path}: its weights do not fit this model ({', '.join(wrong) or 'extra weights'}); "
            "the data or the model settings have changed since that run started."
        )


def _differing_settings(saved: dict[str, Any], now: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    # A key added to the schema after the checkpoint was written had its default value then.
    pairs = [(g, k) for g in RESUME_MUST_MATCH_GROUPS for k in sorted(set(saved.get(g, {})) | set(now[g]))]
    pairs += [p for p in RESUME_MUST_MATCH_KEYS if p not in pairs]
    out = []
    for group, key in pairs:
        before, after = saved.get(group, {}).get(key, defaults[group].get(key)), now[group].get(key)
        if same_setting(key, before, after):
            continue
        if isinstance(before, dict) and isinstance(after, dict):  # e.g. dataset.item_features: name its keys
            out += [f"{group}.{key}.{k}" for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
        else:
            out.append(f"{group}.{key}")
    return out


def same_setting(key: str, saved: Any, now: Any) -> bool:
    """Equal settings; a dataset path given relative in one run and absolute in the other (or from
    another working directory) still names the same file when both resolve to it."""
    if key == "path" and isinstance(saved, str) and isinstance(now, str) and saved != now:
        return Path(saved).expanduser().resolve() == Path(now).expanduser().resolve()
    return saved == now
