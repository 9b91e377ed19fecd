"""Cold-start reporting: metrics for warm and cold targets, a feature-only baseline, and the
beyond-accuracy metrics of the recommended lists (definitions in docs/ARCHITECTURE.md).

A target is *warm* when its item has events in the training data and *cold* when it has none
(held out with `dataset.split.cold_items`, or first seen after a temporal cut). Each group
reports every metric, its count and the standard error of each mean (sample standard deviation
of the per-user values over the square root of the count), written under the flat names of
`evaluation/warm_cold.py` (`test/warm/ndcg@10`, `test/cold/targets`, ...).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from seqrec_cli.data.item_features import ItemFeatures
from seqrec_cli.evaluation import warm_cold
from seqrec_cli.evaluation.metrics import ranking_metrics
from seqrec_cli.evaluation.ranking import EvalInputs, Scorer


def per_user_values(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Each user's HR@K, NDCG@K and reciprocal rank (the means are `ranking_metrics`)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    gain = 1.0 / np.log2(ranks + 2.0)
    out = {f"hr@{k}": (ranks < k).astype(np.float64) for k in ks}
    out.update({f"ndcg@{k}": np.where(ranks < k, gain, 0.0) for k in ks})
    out["mrr"] = 1.0 / (ranks + 1.0)
    return out


def group_metrics(ranks: np.ndarray, warm: np.ndarray, ks: Sequence[int]) -> dict[str, dict[str, float]]:
    """{"warm": {...}, "cold": {...}}: metrics, `count` and `<metric>_se` of each group."""
    out: dict[str, dict[str, float]] = {}
    for name, rows in (("warm", warm), ("cold", ~warm)):
        group = np.asarray(ranks)[rows]
        metrics: dict[str, float] = {"count": int(len(group))}
        if len(group):
            metrics.update(ranking_metrics(group, ks))
            for key, values in per_user_values(group, ks).items():
                metrics[f"{key}_se"] = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
        out[name] = metrics
    return out


def feature_matrix(features: ItemFeatures) -> np.ndarray:
    """[n_items + 1, F] float32, unit rows: one-hot categorical values, multi-hot values (each
    cell's values weighted 1/count), standardised numbers, unit-length vectors; padding and
    "unknown" codes add nothing. A row without any feature is zero."""
    blocks = []
    for codes, size in (
        *((c, len(v)) for c, v in zip(features.categorical.values(), features.meta["categorical"].values())),
        *((c, len(v)) for c, v in zip(features.multi.values(), features.meta["multi_valued"].values())),
    ):
        codes = codes.reshape(len(codes), -1)
        block = np.zeros((len(codes), size + 2), dtype=np.float32)
        np.add.at(block, (np.repeat(np.arange(len(codes)), codes.shape[1]), codes.ravel()), 1.0)
        block = block[:, 2:]
        blocks.append(block / np.maximum(block.sum(1, keepdims=True), 1.0))
    if features.numeric is not None:
        blocks.append(features.numeric.astype(np.float32))
    if features.vectors is not None:
        v = features.vectors.astype(np.float32)
        blocks.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12))
    if not blocks:
        return np.zeros((features.n_rows, 1), dtype=np.float32)
    matrix = np.concatenate(blocks, axis=1)
    matrix[0] = 0.0
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def feature_scorer(matrix: np.ndarray, device: torch.device) -> Scorer:
    """Feature-only baseline: an item's score is the cosine similarity of its feature row to the
    mean feature row of the user's input window (the items the model would see)."""
    table = torch.as_tensor(matrix, device=device)
    columns = table[1:].T.contiguous()

    def encode(inputs: EvalInputs, rows: slice) -> torch.Tensor:
        profile = table[inputs.items[rows]].sum(1) / inputs.lengths[rows, None].clamp(min=1)
        return profile / profile.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def score(queries: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.matmul(queries, columns, out=out)

    return Scorer(encode, score)


def beyond_accuracy(
    top: np.ndarray, counts: np.ndarray, ks: Sequence[int], matrix: Optional[np.ndarray] = None
) -> dict[str, float]:
    """coverage@K, novelty@K, avg_popularity@K and (with a feature matrix) diversity@K of the
    lists `top` ([users, >= max K] item ids, best first) for every K, with item counts `counts`
    ([n_items + 1]) of the data visible to the model (see docs/ARCHITECTURE.md)."""
    n_items = len(counts) - 1
    c = np.asarray(counts[1:], dtype=np.float64)
    info = -np.log2((c + 1.0) / (c.sum() + n_items))  # self-information, add-one smoothed
    out: dict[str, float] = {}
    for k in ks:
        lists = top[:, :k]
        if lists.size == 0:
            continue
        out[f"coverage@{k}"] = float(len(np.unique(lists[lists > 0])) / n_items)
        out[f"novelty@{k}"] = float(info[lists - 1].mean())
        out[f"avg_popularity@{k}"] = float(c[lists - 1].mean())
        if matrix is not None and k > 1:
            rows = matrix[lists]  # [users, k, F], unit rows
            total = np.square(rows.sum(1)).sum(1)
            self_sim = np.square(rows).sum((1, 2))
            out[f"diversity@{k}"] = float(np.mean(1.0 - (total - self_sim) / (k * (k - 1))))
    return out


def evaluate_split(
    model: torch.nn.Module,
    inputs: EvalInputs,
    *,
    train_counts: np.ndarray,
    visible_counts: np.ndarray,
    batch_size: int,
    ks: Sequence[int],
    amp: bool,
    matrix: Optional[np.ndarray] = None,
) -> dict[str, dict]:
    """One split, one process: model, popularity and (with `matrix`) feature-only metrics, each
    also for warm / cold targets (warm: `train_counts[target] > 0`), and the beyond-accuracy
    metrics of each one's lists (popularity counted in `visible_counts`): {"metrics": ...,
    "groups": ..., "beyond": ...}, each keyed by result set ("model", "popularity", "features")."""
    from seqrec_cli.evaluation.ranking import model_scorer, popularity_scorer, rank_all

    device = inputs.items.device
    scorers = {"model": None, "popularity": popularity_scorer(visible_counts, device)}
    if matrix is not None:
        scorers["features"] = feature_scorer(matrix, device)
    warm = warm_targets(inputs, train_counts)
    out: dict[str, dict] = {"metrics": {}, "groups": {}, "beyond": {}}
    was_training = model.training
    model.eval()
    try:
        with model.precomputed_items():
            for name, scorer in scorers.items():
                top = np.zeros((len(inputs), max(ks)), dtype=np.int64)
                ranks = rank_all(inputs, scorer or model_scorer(model, amp), batch_size, top)
                out["metrics"][name] = ranking_metrics(ranks, ks)
                out["groups"][name] = group_metrics(ranks, warm, ks)
                out["beyond"][name] = beyond_accuracy(top, visible_counts, ks, matrix)
    finally:
        model.train(was_training)
    return out


def warm_targets(inputs: EvalInputs, train_counts: np.ndarray) -> np.ndarray:
    """Bool per row, in the split's order: the target's item has training events."""
    return train_counts[inputs.targets.cpu().numpy()[np.argsort(inputs.order)]] > 0


def split_extras(result: dict[str, dict], split: str, with_features: bool) -> dict[str, Any]:
    """What an `evaluate_split` result adds to metrics.json / eval_<split>.json: the flat warm /
    cold names (`warm_cold`, when the split has cold targets or features are loaded: else every
    target is warm and the groups repeat the overall metrics) and `feature_baseline`."""
    extras: dict[str, Any] = {}
    if result["groups"]["model"]["cold"]["count"] or with_features:
        extras[warm_cold.SECTION] = warm_cold.flat_names(split, result["groups"])
    if with_features:
        extras["feature_baseline"] = {split: result["metrics"]["features"]}
    return extras


def merge_extras(into: dict[str, Any], extras: dict[str, Any]) -> None:
    """Add one split's `split_extras` to those of the others (each section's keys side by side)."""
    for key, value in extras.items():
        into.setdefault(key, {}).update(value)


def show_cold_start(metrics: dict[str, Any], name: str, ks: Sequence[int]) -> None:
    """The warm / cold tables (one row per flat name, one column per result set) and the
    beyond-accuracy table of a metrics.json or eval_<split>.json, when it has them."""
    from seqrec_cli.io.console import results_table, show_table

    k = 10 if 10 in ks else max(ks)
    labels = {"model": name, "popularity": "popularity", "features": "features only"}
    flat = warm_cold.from_metrics(metrics)
    for split in warm_cold.splits_in(flat):
        names = warm_cold.model_names(split, [f"hr@{k}", f"ndcg@{k}"])
        # A baseline's own figures carry its prefix (popularity/test/warm/hr@10); counts are shared.
        columns = {labels[s]: warm_cold.values_of(flat, s, names) for s in labels}
        columns = {label: v for label, v in columns.items() if any(not n.endswith("/targets") for n in v)}
        show_table(results_table(f"Warm / cold {split} targets (± standard errors in the JSON)", columns, names))
    keys = [f"coverage@{k}", f"novelty@{k}", f"diversity@{k}", f"avg_popularity@{k}"]
    for split, beyond in metrics.get("beyond", {}).items():
        columns = {labels[s]: b for s, b in beyond.items()}
        show_table(results_table(f"Beyond accuracy ({split} lists)", columns, keys))
