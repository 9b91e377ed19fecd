"""Warm / cold metric names: each group figure under one flat name that every tool shows as is.

- `<split>/<group>/<metric>` for the model: `test/warm/ndcg@10`, `test/cold/hr@10`, `valid/cold/mrr`;
- the same led by `popularity/` and `feature_baseline/` for the two baselines
  (`popularity/test/cold/hr@10`), one level below their overall `popularity/test/hr@10`;
- `<name>_se` for the standard error of the mean (`test/cold/ndcg@10_se`);
- `<split>/<group>/targets` for the number of targets in the group (one per evaluated user). It is
  the same for the model and both baselines, so it is written once, without a prefix.

metrics.json and eval_<split>.json hold these names in their `warm_cold` section, a flat dict.
Run directories written before the flat names hold nested `cold_start` groups instead;
`from_metrics` reads both. No torch here: seqrec-report reads these names and starts fast.
"""

from __future__ import annotations

from typing import Any, Mapping

SECTION = "warm_cold"
GROUPS = ("warm", "cold")
SPLITS = ("valid", "test")
# Result set (as `cold_start.evaluate_split` names them) -> the prefix of its names.
PREFIXES = {"model": "", "popularity": "popularity/", "features": "feature_baseline/"}

Groups = Mapping[str, Mapping[str, Any]]  # {"warm": {"count": n, "hr@10": ..., "hr@10_se": ...}, "cold": {...}}


def flat_names(split: str, groups: Mapping[str, Groups]) -> dict[str, float]:
    """The flat names of one split's groups, `groups` = {result set: `cold_start.group_metrics`}
    (the model's first); each group's count becomes `<split>/<group>/targets`."""
    out: dict[str, float] = {}
    for scorer, by_group in groups.items():
        prefix = PREFIXES[scorer]
        for group in GROUPS:
            values = dict(by_group[group])
            count = values.pop("count", None)
            if scorer == "model" and count is not None:
                out[f"{split}/{group}/targets"] = int(count)
            out.update({f"{prefix}{split}/{group}/{key}": value for key, value in values.items()})
    return out


def from_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The flat warm / cold names of a metrics.json or eval_<split>.json: its `warm_cold` section,
    or the nested `cold_start` groups of a run written before the flat names (metrics.json:
    {split: {result set: groups}}; eval_<split>.json: {result set: groups} of its `split`)."""
    flat = metrics.get(SECTION)
    if isinstance(flat, dict):
        return dict(flat)
    nested = metrics.get("cold_start")
    if not isinstance(nested, dict):
        return {}
    if "model" in nested:
        return flat_names(str(metrics.get("split", "test")), nested)
    out: dict[str, float] = {}
    for split, groups in nested.items():
        if isinstance(groups, dict) and "model" in groups:
            out.update(flat_names(split, groups))
    return out


def splits_in(flat: Mapping[str, Any]) -> list[str]:
    """The splits that have group figures, validation first."""
    return [s for s in SPLITS if f"{s}/warm/targets" in flat or f"{s}/cold/targets" in flat]


def model_names(split: str, metrics: list[str]) -> list[str]:
    """The model's names of `metrics` for both groups, each group led by its count."""
    return [f"{split}/{group}/{m}" for group in GROUPS for m in ("targets", *metrics)]


def values_of(flat: Mapping[str, Any], scorer: str, names: list[str]) -> dict[str, Any]:
    """{model name: the value of `scorer` (a result set) under that name}; counts are shared."""
    prefix = PREFIXES[scorer]
    out = {}
    for name in names:
        key = name if name.endswith("/targets") else prefix + name
        if key in flat:
            out[name] = flat[key]
    return out
