"""Downloads, end to end against a server on 127.0.0.1 (never the real host)."""

import hashlib
import io
import logging
import zipfile

import pytest

from local_http import LocalServer, Route, closed_port_url
from seqrec_cli.config.schema import DatasetConfig
from seqrec_cli.data import load
from seqrec_cli.data.downloads import data_dir, fetch
from seqrec_cli.data.metadata import item_titles
from seqrec_cli.errors import UserError


def ml100k_zip(n_users=4) -> bytes:
    """A zip shaped like GroupLens' ml-100k.zip: a top folder holding u.data and u.item."""
    ratings = "".join(
        f"{u}\t{(u * 3 + i) % 7 + 1}\t{i % 5 + 1}\t{1000 + i}\n" for u in range(1, n_users + 1) for i in range(6)
    )
    titles = "".join(f"{i}|Film {i} (199{i})|01-Jan-1995||http://x\n" for i in range(1, 8)).replace(
        "Film 1 ", "Café 1 "
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", ratings)
        zf.writestr("ml-100k/u.item", titles.encode("latin-1"))
        zf.writestr("ml-100k/README", "test copy")
    return buf.getvalue()


GOOD = ml100k_zip()
SHA = hashlib.sha256(GOOD).hexdigest()


@pytest.fixture
def server():
    with LocalServer() as srv:
        srv.routes["/good.zip"] = Route(GOOD)
        srv.routes["/cut.zip"] = Route(GOOD, truncate=True)
        srv.routes["/broken.zip"] = Route(status=500)
        yield srv


def leftovers(root):
    return sorted(p.name for p in root.rglob("*") if p.name.startswith(".") or p.suffix in (".part", ".zip"))


def test_good_download_is_verified_unpacked_and_reused(server, tmp_path):
    folder = fetch("ml-100k", tmp_path, "u.data", url=server.url("/good.zip"), sha256=SHA)
    assert folder == tmp_path / "ml-100k" and (folder / "u.data").is_file() and (folder / "u.item").is_file()
    assert leftovers(tmp_path) == []
    fetch("ml-100k", tmp_path, "u.data", url=server.url("/good.zip"), sha256=SHA)
    assert server.hits["/good.zip"] == 1  # once


def test_named_dataset_downloads_through_load_with_titles(server, tmp_path):
    cfg = DatasetConfig(
        name="ml-100k",
        source="movielens",
        url=server.url("/good.zip"),
        sha256=SHA,
        data_dir=str(tmp_path / "data"),
        cache_dir=str(tmp_path / "cache"),
        min_user_count=1,
        min_item_count=1,
    )
    _, summary = load(cfg)
    assert summary["interactions"] == 24 and summary["users"] == 4
    assert item_titles(cfg)[1] == "Café 1 (1991)"
    _, again = load(cfg)
    assert again["cache"]["hit"] and server.hits["/good.zip"] == 1


def test_unknown_checksum_downloads_with_a_logged_note(server, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="seqrec_cli.data.downloads"):
        fetch("ml-100k", tmp_path, "u.data", url=server.url("/good.zip"), sha256=None)
    assert (tmp_path / "ml-100k" / "u.data").is_file()
    assert "No checksum is known for ml-100k" in caplog.text and SHA in caplog.text


@pytest.mark.parametrize(
    "path, sha, message",
    [
        ("/cut.zip", SHA, r"was cut short \(\d[\d,]* of [\d,]+ bytes\)"),
        ("/good.zip", "0" * 64, "does not match its SHA-256 checksum"),
        ("/broken.zip", SHA, "answered HTTP 500"),
    ],
)
def test_bad_downloads_leave_nothing_behind(server, tmp_path, path, sha, message):
    with pytest.raises(UserError, match=message) as info:
        fetch("ml-100k", tmp_path, "u.data", url=server.url(path), sha256=sha)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no partial file, no folder that looks complete


def test_no_network_says_where_to_get_the_file_and_where_to_put_it(tmp_path):
    url = closed_port_url("/ml-1m.zip")
    with pytest.raises(UserError) as info:
        fetch("ml-1m", tmp_path, "ratings.dat", url=url)
    text = str(info.value)
    assert "no network connection" in text and f"download {url} yourself" in text
    assert str(tmp_path / "ml-1m") in text and "dataset.path" in text


def test_archive_without_the_expected_file_is_refused(server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("other/readme.txt", "x")
    server.routes["/other.zip"] = Route(buf.getvalue())
    with pytest.raises(UserError, match="holds no u.data"):
        fetch("ml-100k", tmp_path, "u.data", url=server.url("/other.zip"))
    assert not (tmp_path / "ml-100k").exists()


def test_data_dir_from_config_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQREC_DATA_DIR", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(str(tmp_path / "cfg")) == tmp_path / "cfg"


def test_publisher_md5_is_checked(server, tmp_path):
    with pytest.raises(UserError, match="publisher's MD5"):
        fetch("ml-100k", tmp_path, "u.data", url=server.url("/good.zip"), md5="0" * 32)
    assert leftovers(tmp_path) == [] and not (tmp_path / "ml-100k" / "u.data").exists()
    md5 = hashlib.md5(GOOD, usedforsecurity=False).hexdigest()
    assert (fetch("ml-100k", tmp_path, "u.data", url=server.url("/good.zip"), md5=md5) / "u.data").is_file()


def test_registry_carries_the_publisher_digests_for_the_grouplens_archives():
    from seqrec_cli.data.downloads import REMOTES

    for name in ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m"):
        assert REMOTES[name].md5 is not None and len(REMOTES[name].md5) == 32
