"""Every `dataset=` option composes against the schema, and impossible dataset values are refused."""

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from conftest import REPO
from seqrec_cli.config.checks import validate_dataset
from seqrec_cli.config.convert import flat_dict, to_train_config
from seqrec_cli.config.registry import register_schemas
from seqrec_cli.config.schema import DatasetConfig, SplitConfig
from seqrec_cli.config.registry import register_resolvers
from seqrec_cli.errors import UserError

OPTIONS = {
    # option -> (source, extra overrides)
    "csv": ("csv", ["dataset.path=x.csv", "dataset.sep='\\t'"]),
    "atomic": ("atomic", ["dataset.path=x.inter"]),
    "sequences": ("sequences", ["dataset.path=x.txt"]),
    "pairs": ("pairs", ["dataset.path=x.txt"]),
    "amazon-beauty": ("sequences", ["dataset.path=x.txt"]),
    "ml-100k": ("movielens", []),
    "ml-1m": ("movielens", []),
    "ml-10m": ("movielens", []),
    "ml-20m": ("movielens", []),
    "ml-25m": ("movielens", ["dataset.split.kind=temporal", "dataset.dedup=first", "dataset.max_history=500"]),
    "ml-latest-small": ("movielens", ["dataset.min_rating=4"]),
    "synthetic": ("synthetic", []),
}


def test_every_dataset_option_has_a_yaml():
    assert sorted(p.stem for p in (REPO / "conf" / "dataset").glob("*.yaml")) == sorted(OPTIONS)


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_dataset_option_composes_and_validates(option):
    register_schemas()
    register_resolvers()
    source, extra = OPTIONS[option]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"dataset={option}", *extra])
    typed = to_train_config(cfg)
    assert typed.dataset.source == source and typed.dataset.name == (option if source != "csv" else "csv")
    if option == "csv":
        assert typed.dataset.sep == "\\t"  # Hydra keeps the backslash; the reader maps it to a tab


def ds(**kw):
    return DatasetConfig(**kw)


@pytest.mark.parametrize(
    "config, words",
    [
        (ds(source="excel"), "dataset.source='excel'"),
        (ds(source="csv"), "dataset.path=None"),
        (ds(source="movielens", name="ml-5m"), "dataset.name='ml-5m'"),
        (ds(source="csv", path="x", rating_col=None, min_rating=4.0), "dataset.rating_col"),
        (ds(source="sequences", path="x", min_rating=4.0), "has no ratings"),
        (ds(dedup="latest"), "dataset.dedup='latest'"),
        (ds(max_history=0), "dataset.max_history=0"),
        (ds(id_type="float"), "dataset.id_type='float'"),
        (ds(sha256="abc"), "64 hexadecimal digits"),
        (ds(split=SplitConfig(kind="random")), "dataset.split.kind='random'"),
        (
            ds(split=SplitConfig(kind="temporal", valid_quantile=0.9, test_quantile=0.8)),
            "below dataset.split.test_quantile",
        ),
        (ds(split=SplitConfig(kind="temporal", test_quantile=1.0)), "strictly between 0 and 1"),
        (ds(split=SplitConfig(kind="temporal", valid_time=5, test_time=2)), "before dataset.split.test_time"),
        (ds(source="pairs", path="x", split=SplitConfig(kind="temporal")), "needs timestamps"),
        (ds(source="csv", path="x", time_col=None, split=SplitConfig(kind="temporal")), "needs timestamps"),
    ],
)
def test_impossible_dataset_values_are_refused(config, words):
    with pytest.raises(UserError) as info:
        validate_dataset(config)
    assert words in str(info.value)


def test_defaults_are_valid():
    validate_dataset(DatasetConfig())
    assert Path(REPO / "conf" / "dataset" / "ml-latest-small.yaml").is_file()


@pytest.mark.parametrize("preset", sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_preset_composes_and_validates(preset):
    register_schemas()
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={preset}", "dataset.path=x"])
    to_train_config(cfg)


def test_beauty_and_ml1m_presets_hold_the_published_settings():
    register_schemas()
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        beauty = to_train_config(compose(config_name="train", overrides=["experiment=sasrec_beauty", "dataset.path=x"]))
        tuned = to_train_config(
            compose(config_name="train", overrides=["experiment=sasrec_beauty_tuned", "dataset.path=x"])
        )
        ml1m = to_train_config(compose(config_name="train", overrides=["experiment=sasrec_ml1m"]))
    e, m, t = beauty.encoder, beauty.model, beauty.trainer
    assert (e.name, e.num_layers, e.num_heads, e.dropout, m.embedding_dim, m.max_len) == (
        "attention",
        1,
        1,
        0.2,
        64,
        50,
    )
    assert (beauty.optimizer.lr, t.batch_size, t.max_epochs, t.patience, beauty.dataset.name) == (
        1e-3,
        128,
        200,
        50,
        "amazon-beauty",
    )
    assert (beauty.optimizer.name, beauty.optimizer.weight_decay, beauty.loss.name) == ("adam", 0.0, "ce")
    # The settings that reached the bar differ from the published ones in exactly these values.
    published, reached = flat_dict(dataclasses.asdict(beauty)), flat_dict(dataclasses.asdict(tuned))
    differ = {key: (value, reached[key]) for key, value in published.items() if reached[key] != value}
    assert differ == {
        "encoder.num_layers": (1, 2),
        "encoder.dropout": (0.2, 0.5),
        "optimizer.name": ("adam", "adamw"),
        "optimizer.weight_decay": (0.0, 0.1),
        "trainer.patience": (50, 20),
    }
    e, m, t = ml1m.encoder, ml1m.model, ml1m.trainer
    assert (e.num_layers, e.num_heads, e.dropout, m.embedding_dim, m.max_len, t.batch_size, t.patience) == (
        2,
        1,
        0.1,
        64,
        200,
        128,
        10,
    )
    assert (ml1m.dataset.name, ml1m.loss.name) == ("ml-1m", "ce")
