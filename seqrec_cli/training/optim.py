"""The optimizer: parameter groups with or without weight decay, and a resume's new settings."""

from __future__ import annotations

import logging
from typing import Any

import torch

from seqrec_cli.config.schema import TrainConfig

log = logging.getLogger(__name__)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """The configured optimizer. With `optimizer.decay_norms_and_biases=false` and/or
    `decay_embeddings=false` those parameters go into a group without weight decay (each group
    says whether it decays, so a resume can set a new weight decay on the right ones)."""
    o = cfg.optimizer
    fused = {"fused": True} if device.type == "cuda" else {}
    groups = _parameter_groups(model, o.decay_norms_and_biases, o.decay_embeddings, o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr, betas=tuple(o.betas), **fused)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), **fused)
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)


def _parameter_groups(model: torch.nn.Module, norms_and_biases: bool, embeddings: bool, decay: float) -> list[dict]:
    if norms_and_biases and embeddings:
        return [{"params": list(model.parameters()), "weight_decay": decay, "decay": True}]
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    decayed, kept = [], []
    for param in model.parameters():
        is_embedding = id(param) in embedding_ids
        small = param.ndim < 2 and not is_embedding  # LayerNorm weights and every bias
        (kept if (small and not norms_and_biases) or (is_embedding and not embeddings) else decayed).append(param)
    return [
        {"params": decayed, "weight_decay": decay, "decay": True},
        {"params": kept, "weight_decay": 0.0, "decay": False},
    ]


def apply_optimizer_settings(optimizer: torch.optim.Optimizer, cfg: TrainConfig, saved: dict[str, Any]) -> None:
    """`load_state_dict` brings back the saved hyperparameters; a resume that sets new ones (a new
    lr, weight decay, betas, momentum) trains with them from the resumed epoch on, and says so."""
    o = cfg.optimizer
    wanted = {"lr": o.lr, "weight_decay": o.weight_decay}
    if o.name in ("adam", "adamw"):
        wanted["betas"] = tuple(o.betas)
    if o.name == "sgd":
        wanted["momentum"] = o.momentum
    for group in optimizer.param_groups:
        for key, value in wanted.items():
            group[key] = 0.0 if key == "weight_decay" and not group.get("decay", True) else value
    changed = [
        f"optimizer.{k} {saved.get(k)} -> {v if k != 'betas' else list(v)}"
        for k, v in wanted.items()
        if k in saved and _as_list(saved[k]) != _as_list(v)
    ]
    if changed:
        log.info("Resuming with new optimizer settings: %s.", ", ".join(changed))


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value
