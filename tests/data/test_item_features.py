"""The item table reader, typed columns, MovieLens genres / years and the bad-input sentences."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqrec_cli.config.feature_checks import validate_features
from seqrec_cli.config.schema import DatasetConfig, ItemFeaturesConfig, ModelConfig, TrainConfig
from seqrec_cli.data import item_features as feats
from seqrec_cli.data.item_features import FIRST_VALUE, PAD, UNKNOWN
from seqrec_cli.errors import UserError

TABLE = "item_id,brand,genres,price\n10,acme,Action|Comedy,5\n20,zeta,Comedy,50\n30,acme,,500\n"


def _config(path: Path, **changes) -> ItemFeaturesConfig:
    base = dict(path=str(path), categorical=["brand"], multi_valued=["genres"], multi_sep="|", numeric=["price"])
    return ItemFeaturesConfig(**{**base, **changes})


def _fit(path: Path, item_ids, **changes) -> feats.ItemFeatures:
    return feats.load_features(_config(path, **changes), np.asarray(item_ids))


def test_typed_columns_are_encoded_per_catalogue_item(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(TABLE)
    f = _fit(path, [10, 20, 30, 40])  # 40 is not in the table
    assert f.meta["categorical"]["brand"] == ["acme", "zeta"]
    assert f.categorical["brand"].tolist() == [PAD, FIRST_VALUE, FIRST_VALUE + 1, FIRST_VALUE, UNKNOWN]
    assert f.meta["multi_valued"]["genres"] == ["Action", "Comedy"]
    assert f.multi["genres"].tolist() == [[0, 0], [2, 3], [3, 0], [UNKNOWN, 0], [UNKNOWN, 0]]
    prices = np.array([5.0, 50.0, 500.0])
    expected = (prices - prices.mean()) / prices.std()
    np.testing.assert_allclose(f.numeric[1:4, 0], expected, rtol=1e-6)
    assert f.numeric[4, 0] == 0.0 and f.numeric[0, 0] == 0.0  # missing item: the mean
    assert f.missing == 1


def test_summary_counts_the_events_and_the_items_missing_from_the_table(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(TABLE)
    f = _fit(path, [10, 20, 30, 40, 50])  # 40 and 50 are not in the table
    events = np.array([1, 4, 4, 2, 5, 4, 3, 1])  # rows: 4 is item 40, 5 is item 50
    summary = feats.feature_summary(f, events)
    assert summary["items_missing_from_table"] == 2
    assert summary["events_missing_from_table"] == 4 == sum(i in (4, 5) for i in events.tolist())
    assert feats.feature_summary(_fit(path, [10, 20]), events[events <= 2])["events_missing_from_table"] == 0


def test_log_option_and_unknown_values_under_a_saved_vocabulary(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(TABLE)
    f = _fit(path, [10, 20, 30], log_numeric=["price"])
    logs = np.log1p([5.0, 50.0, 500.0])
    np.testing.assert_allclose(f.numeric[1:, 0], (logs - logs.mean()) / logs.std(), rtol=1e-5)
    new = tmp_path / "new.csv"
    new.write_text("item_id,brand,genres,price\n99,newco,Drama|Comedy,50\n")
    table, keys = feats.read_table(_config(new))
    encoded = feats.encode_table(f.meta, table, keys, np.asarray([99]))
    assert encoded.categorical["brand"].tolist() == [PAD, UNKNOWN]
    assert encoded.multi["genres"].tolist() == [[0, 0], [UNKNOWN, 3]]
    np.testing.assert_allclose(encoded.numeric[1, 0], f.numeric[2, 0], rtol=1e-6)  # same scaler


@pytest.mark.parametrize("kind", ["tsv", "gzip", "parquet"])
def test_every_event_reader_format(tmp_path, kind):
    frame = pd.read_csv(__import__("io").StringIO(TABLE), dtype={"brand": str, "genres": str})
    if kind == "tsv":
        path = tmp_path / "items.tsv"
        frame.to_csv(path, sep="\t", index=False)
        cfg = _config(path, sep="\t")
    elif kind == "gzip":
        path = tmp_path / "items.csv.gz"
        path.write_bytes(gzip.compress(TABLE.encode()))
        cfg = _config(path)
    else:
        pytest.importorskip("pyarrow")
        path = tmp_path / "items.parquet"
        frame.to_parquet(path)
        cfg = _config(path)
    f = feats.load_features(cfg, np.asarray([10, 20, 30]))
    assert f.categorical["brand"].tolist() == [PAD, 2, 3, 2]
    assert f.multi["genres"].tolist()[1] == [2, 3]


def test_vectors_from_npy_and_parquet(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(TABLE)
    matrix = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.save(tmp_path / "v.npy", matrix)
    (tmp_path / "v.ids").write_text("30\n10\n20\n")
    f = _fit(path, [10, 20, 30, 40], vectors=str(tmp_path / "v.npy"), vectors_ids=str(tmp_path / "v.ids"))
    assert f.vectors.tolist() == [[0, 0], [2, 3], [4, 5], [0, 1], [0, 0]]
    assert f.meta["vector_width"] == 2
    pytest.importorskip("pyarrow")
    pd.DataFrame({"item_id": [30, 10, 20], "vector": [list(r) for r in matrix]}).to_parquet(tmp_path / "v.parquet")
    g = _fit(path, [10, 20, 30, 40], vectors=str(tmp_path / "v.parquet"))
    assert g.vectors.tolist() == f.vectors.tolist()


def _message(tmp_path: Path, text: str, **changes) -> str:
    path = tmp_path / "items.csv"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        _fit(path, [10, 20, 30], **changes)
    return str(err.value)


def test_bad_tables_are_one_sentence(tmp_path):
    with pytest.raises(UserError, match="Item table not found"):
        feats.load_features(_config(tmp_path / "nope.csv"), np.asarray([10]))
    found = _message(tmp_path, TABLE.replace("item_id", "id"))
    assert "no column 'item_id'" in found and "'id', 'brand'" in found
    duplicated = _message(tmp_path, TABLE + "20,acme,Drama,1\n")
    assert "item '20' more than once" in duplicated
    numeric = _message(tmp_path, TABLE.replace(",50\n", ",cheap\n").replace(",500\n", ",inf\n"))
    assert "'price' has 2 non-numeric or non-finite" in numeric and "fill=median|zero" in numeric


def test_fill_median_and_zero(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(TABLE.replace(",50\n", ",cheap\n"))
    f = _fit(path, [10, 20, 30], fill="median")
    assert f.meta["numeric"]["price"]["fill"] == pytest.approx(252.5)
    assert np.isfinite(f.numeric).all()
    z = _fit(path, [10, 20, 30], fill="zero")
    assert z.meta["numeric"]["price"]["fill"] == 0.0


def test_bad_vectors(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(TABLE)
    np.save(tmp_path / "v.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    (tmp_path / "v.ids").write_text("10\n20\n")
    with pytest.raises(UserError, match="1 item vectors .* NaN or infinite"):
        _fit(path, [10, 20], vectors=str(tmp_path / "v.npy"), vectors_ids=str(tmp_path / "v.ids"))
    trained = _fit(path, [10, 20])
    trained.meta["vector_width"] = 2  # as a checkpoint of a model trained on 2-wide vectors says
    with pytest.raises(UserError, match="3 wide, and the model was trained on 2-wide"):
        feats.with_vectors(trained, np.zeros((2, 3), np.float32), ["10", "20"], np.asarray([10, 20]))


@pytest.mark.parametrize(
    "model, features, expected",
    [
        (ModelConfig(item_repr="features"), ItemFeaturesConfig(), "needs item features, and none are configured"),
        (ModelConfig(item_repr="id", item_features=True), ItemFeaturesConfig(), "item_repr=id leaves them out"),
        (ModelConfig(), ItemFeaturesConfig(path="x.csv", multi_valued=["g"]), "needs the separator"),
        (ModelConfig(item_repr="bogus"), ItemFeaturesConfig(), "model.item_repr='bogus'"),
        (ModelConfig(item_features=True), ItemFeaturesConfig(path="x.csv"), "names no column"),
    ],
)
def test_config_checks(model, features, expected):
    cfg = TrainConfig(dataset=DatasetConfig(source="csv", path="e.csv", item_features=features), model=model)
    with pytest.raises(UserError, match=expected):
        validate_features(cfg)


def test_movielens_genres_and_year_bundled():
    cfg = DatasetConfig()  # the bundled ml-latest-small
    f = feats.dataset_features(cfg, np.asarray([1, 2]))
    genres = f.meta["multi_valued"]["genres"]
    toy_story = {genres[c - FIRST_VALUE] for c in f.multi["genres"][1] if c >= FIRST_VALUE}
    assert toy_story == {"Adventure", "Animation", "Children", "Comedy", "Fantasy"}
    assert f.meta["numeric"]["year"]["mean"] == pytest.approx(1995.0)


def test_movielens_100k_u_item(shared_data):
    cfg = DatasetConfig(name="ml-100k", source="movielens", path=str(shared_data / "ml-100k"))
    table, keys = __import__("seqrec_cli.data.movielens", fromlist=["x"]).movie_features(cfg)
    assert keys[:2] == ["1", "2"]
    assert table["genres"][0] == "Animation|Children's|Comedy" and table["year"][0] == 1995
    assert table["genres"][1] == "Action|Adventure|Thriller"
