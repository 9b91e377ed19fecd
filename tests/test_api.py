"""The Python API of the README: compose with overrides, run, get metrics.json back."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_module

from seqrec_cli.config.convert import to_train_config
from seqrec_cli.config.registry import register_schemas
from seqrec_cli.config.schema import TrainConfig
from seqrec_cli.config.registry import register_resolvers
from seqrec_cli.errors import UserError
from seqrec_cli.api import run


def test_compose_then_run_returns_metrics_json(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQREC_CACHE_DIR", str(tmp_path / ".cache"))
    register_schemas()
    register_resolvers()
    with initialize_config_module("seqrec_cli.conf", version_base="1.3"):
        cfg = compose("train", overrides=["debug=smoke", "encoder=gru", "trainer.max_epochs=1"])
    metrics = run(to_train_config(cfg), tmp_path / "run")
    assert metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["encoder"] == "gru" and (tmp_path / "run" / ".hydra" / "config.yaml").is_file()


def test_a_config_built_in_python_is_checked_like_the_cli_s(tmp_path):
    cfg = TrainConfig()
    cfg.optimizer.lr = -1.0
    with pytest.raises(UserError, match="optimizer.lr"):
        run(cfg, tmp_path / "bad")
    assert not (tmp_path / "bad" / "metrics.json").exists()
