"""The flat warm / cold names (`test/warm/ndcg@10`, ...): made from the groups, read back from
metrics.json and eval_<split>.json in the flat form and in the nested form of older runs, logged
as they are by the trackers."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec_cli.evaluation import cold_start, warm_cold
from seqrec_cli.training.tracking import final_metrics

RANKS = np.array([0, 3, 12, 1, 50, 9])
WARM = np.array([True, True, False, True, False, True])


def groups_of_three() -> dict:
    """{result set: groups} as `cold_start.evaluate_split` returns them, for the model and both baselines."""
    return {
        "model": cold_start.group_metrics(RANKS, WARM, [10]),
        "popularity": cold_start.group_metrics(RANKS + 1, WARM, [10]),
        "features": cold_start.group_metrics(RANKS + 2, WARM, [10]),
    }


def test_flat_names_of_the_model_and_both_baselines_with_one_count_per_group():
    groups = groups_of_three()
    flat = warm_cold.flat_names("test", groups)
    assert flat["test/warm/targets"] == 4 and flat["test/cold/targets"] == 2
    assert isinstance(flat["test/warm/targets"], int)
    for scorer, prefix in (("model", ""), ("popularity", "popularity/"), ("features", "feature_baseline/")):
        for group in ("warm", "cold"):
            for key in ("hr@10", "ndcg@10", "mrr", "ndcg@10_se"):
                assert flat[f"{prefix}test/{group}/{key}"] == groups[scorer][group][key]
    # Counts are the same for every result set: written once, without a prefix.
    assert not any(k.endswith("/targets") and not k.startswith("test/") for k in flat)
    n_metrics = 2 * (3 + 3)  # 2 groups x (hr@10, ndcg@10, mrr and their standard errors)
    assert len(flat) == 2 + 3 * n_metrics


def test_an_empty_group_has_its_count_and_no_figures():
    flat = warm_cold.flat_names("valid", {"model": cold_start.group_metrics(RANKS, np.ones(6, bool), [10])})
    assert flat["valid/cold/targets"] == 0 and flat["valid/warm/targets"] == 6
    assert not [k for k in flat if k.startswith("valid/cold/") and k != "valid/cold/targets"]
    assert warm_cold.splits_in(flat) == ["valid"]


def test_from_metrics_reads_the_flat_section_and_the_nested_form_of_older_runs():
    groups = groups_of_three()
    expected = {**warm_cold.flat_names("valid", groups), **warm_cold.flat_names("test", groups)}
    assert warm_cold.from_metrics({"warm_cold": expected}) == expected
    # metrics.json of a run written before the flat names: {"cold_start": {split: {result set: groups}}}
    assert warm_cold.from_metrics({"cold_start": {"valid": groups, "test": groups}}) == expected
    # eval_<split>.json of such a run: {"split": ..., "cold_start": {result set: groups}}
    legacy_eval = {"split": "valid", "cold_start": groups}
    assert warm_cold.from_metrics(legacy_eval) == warm_cold.flat_names("valid", groups)
    assert warm_cold.from_metrics({"test": {"ndcg@10": 0.1}}) == {}
    assert warm_cold.splits_in(expected) == ["valid", "test"]


def test_values_of_reads_each_result_set_under_the_models_names():
    flat = warm_cold.flat_names("test", groups_of_three())
    names = warm_cold.model_names("test", ["hr@10", "ndcg@10"])
    assert names[:3] == ["test/warm/targets", "test/warm/hr@10", "test/warm/ndcg@10"]
    popularity = warm_cold.values_of(flat, "popularity", names)
    assert popularity["test/warm/targets"] == 4  # the shared count
    assert popularity["test/cold/hr@10"] == flat["popularity/test/cold/hr@10"]
    assert warm_cold.values_of({"test/warm/targets": 4}, "features", names) == {"test/warm/targets": 4}


def test_split_extras_adds_groups_only_when_there_are_cold_targets_or_features():
    all_warm = {"metrics": {"model": {}}, "groups": {"model": cold_start.group_metrics(RANKS, np.ones(6, bool), [10])}}
    assert cold_start.split_extras(all_warm, "test", with_features=False) == {}
    some_cold = {"metrics": {"model": {}}, "groups": {"model": cold_start.group_metrics(RANKS, WARM, [10])}}
    extras = cold_start.split_extras(some_cold, "valid", with_features=False)
    assert extras["warm_cold"]["valid/cold/targets"] == 2 and "feature_baseline" not in extras


def test_evaluate_split_takes_its_settings_by_keyword():
    with pytest.raises(TypeError):
        cold_start.evaluate_split(None, None, np.zeros(2), np.zeros(2), 64, [10], False)  # type: ignore[misc]


def test_trackers_log_the_flat_names_as_they_are():
    flat = warm_cold.flat_names("test", groups_of_three())
    logged = final_metrics({"test": {"ndcg@10": 0.1}, "warm_cold": flat})
    assert logged["test/ndcg@10"] == 0.1
    assert logged["test/cold/ndcg@10"] == flat["test/cold/ndcg@10"]
    assert logged["feature_baseline/test/warm/hr@10"] == flat["feature_baseline/test/warm/hr@10"]
    assert logged["test/warm/targets"] == 4.0 and not any(k.startswith("warm_cold/") for k in logged)
