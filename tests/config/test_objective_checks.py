"""Bad input for the masked objective, batch negatives and GRU4Rec's options: one sentence naming
the key (config/objective_checks.py), exit 2 through the CLI."""

import dataclasses

import pytest

from conftest import run_cli
from seqrec_cli.config.checks import validate
from seqrec_cli.config.schema import EncoderConfig, LossConfig, ObjectiveConfig, TrainConfig, TrainerConfig
from seqrec_cli.errors import UserError


def config(**groups):
    return dataclasses.replace(TrainConfig(), **groups)


BAD = [
    ({"objective": ObjectiveConfig(name="masked", mask_prob=0.0)}, "objective.mask_prob"),
    ({"objective": ObjectiveConfig(name="masked", mask_prob=1.0)}, "objective.mask_prob"),
    ({"objective": ObjectiveConfig(mask_prob=-0.1)}, "objective.mask_prob"),
    ({"objective": ObjectiveConfig(name="cloze")}, "objective.name"),
    ({"objective": ObjectiveConfig(name="masked"), "encoder": EncoderConfig(name="gru")}, "objective.name"),
    ({"objective": ObjectiveConfig(name="masked"), "encoder": EncoderConfig(name="lstm")}, "objective.name"),
    (
        {"objective": ObjectiveConfig(name="masked"), "encoder": EncoderConfig(time_features="gap")},
        "encoder.time_features",
    ),
    (
        {"loss": LossConfig(name="sampled_softmax", sampling="in_batch"), "trainer": TrainerConfig(batch_size=1)},
        "trainer.batch_size",
    ),
    (
        {"loss": LossConfig(name="bpr_max", sampling="mixed"), "trainer": TrainerConfig(batch_size=1)},
        "trainer.batch_size",
    ),
    ({"loss": LossConfig(name="bpr_max", popularity_alpha=-0.5)}, "loss.popularity_alpha"),  # GRU4Rec's sample_alpha
    ({"loss": LossConfig(name="ce", bpreg=1.0)}, "loss.bpreg"),  # BPR-max's regularisation with full CE
    ({"loss": LossConfig(name="ce", sampling="in_batch")}, "loss.sampling"),
    ({"loss": LossConfig(name="bpr_max", bpreg=-1.0)}, "loss.bpreg"),
    ({"encoder": EncoderConfig(name="attention", input="one_hot")}, "encoder.input"),
    ({"encoder": EncoderConfig(name="gru", input="bag")}, "encoder.input"),
    ({"encoder": EncoderConfig(name="gru", embedding_dropout=1.0)}, "encoder.embedding_dropout"),
]


@pytest.mark.parametrize("groups, key", BAD)
def test_bad_values_are_one_sentence_naming_the_key(groups, key):
    with pytest.raises(UserError) as err:
        validate(config(**groups))
    message = str(err.value)
    assert message.startswith(f"Invalid config value {key}=") and message.count("\n") == 0


@pytest.mark.parametrize(
    "groups",
    [
        {"objective": ObjectiveConfig(name="masked", mask_prob=0.6)},
        {"objective": ObjectiveConfig(name="masked"), "loss": LossConfig(name="sampled_softmax", sampling="mixed")},
        {"loss": LossConfig(name="bpr_max", sampling="mixed", bpreg=1.0), "encoder": EncoderConfig(name="gru")},
        {"loss": LossConfig(name="top1_max", sampling="in_batch"), "trainer": TrainerConfig(batch_size=2)},
        {"encoder": EncoderConfig(name="lstm", input="one_hot", embedding_dropout=0.0)},
    ],
)
def test_good_combinations_pass(groups):
    validate(config(**groups))


@pytest.mark.parametrize(
    "args, key",
    [
        (["objective=masked", "encoder=gru"], "objective.name"),
        (["objective=masked", "objective.mask_prob=1.5"], "objective.mask_prob"),
        (["loss=bpr_max", "trainer.batch_size=1"], "trainer.batch_size"),
    ],
)
def test_the_cli_exits_2_naming_the_key(tmp_path, args, key):
    result = run_cli(["debug=smoke", *args], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert key in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.pt"))
