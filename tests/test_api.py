"""The Python API of the README: compose with overrides, train, get metrics.json back."""

from __future__ import annotations

import json

import pytest

from seqrec_cli.api import compose, train
from seqrec_cli.config.schema import TrainConfig
from seqrec_cli.errors import UserError


def test_compose_then_train_returns_metrics_json(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQREC_CACHE_DIR", str(tmp_path / ".cache"))
    cfg = compose(["debug=smoke", "encoder=gru", "trainer.max_epochs=1"])
    assert isinstance(cfg, TrainConfig) and cfg.encoder.name == "gru"
    metrics = train(cfg, tmp_path / "run")
    assert metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["encoder"] == "gru" and (tmp_path / "run" / ".hydra" / "config.yaml").is_file()


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["trainer.max_epochs=abc"], ["Invalid override trainer.max_epochs=abc", "Integer"]),
        (["encoder=transformer"], ["Unknown option 'transformer' for encoder", "lstm"]),
        (["+trainer.foo=1"], ["Unknown config key trainer.foo"]),
        (["optimizer.lr=-1"], ["optimizer.lr=-1.0", "> 0"]),
    ],
)
def test_compose_refuses_what_the_cli_refuses_in_one_sentence(overrides, words):
    with pytest.raises(UserError) as info:
        compose(overrides)
    message = str(info.value)
    assert all(w in message for w in words), message
    assert "\n" not in message


def test_a_config_built_in_python_is_checked_like_the_cli_s(tmp_path):
    cfg = TrainConfig()
    cfg.optimizer.lr = -1.0
    with pytest.raises(UserError, match="optimizer.lr"):
        train(cfg, tmp_path / "bad")
    assert not (tmp_path / "bad" / "metrics.json").exists()
