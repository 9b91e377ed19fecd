"""The MovieLens family: where each release keeps its ratings and titles, and how to read them.

A named MovieLens dataset is read from `dataset.path` (the ratings file, its folder, or the folder
above it) when set; otherwise from the copy shipped in the package (ml-latest-small); otherwise
from `$SEQREC_DATA_DIR/<name>/`, downloading it there first when it is not yet present.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Optional

import pandas as pd

from seqrec_cli.config.schema import DatasetConfig
from seqrec_cli.data import columns, downloads, readers
from seqrec_cli.data.columns import EventColumns
from seqrec_cli.data.delimited import ReadOptions, read_delimited
from seqrec_cli.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    """File names and formats of one MovieLens release."""

    ratings: str
    sep: str
    header: bool
    columns: tuple[str, str, str, str]  # user, item, rating, time (names, or numbers without header)
    movies: str
    movies_sep: str
    movies_header: bool
    movies_columns: tuple[str, str]  # item id, title
    # Old releases are latin-1 (u.item, ml-1m's movies.dat); newer ones UTF-8. Titles are tried in
    # this order, so one odd byte never stops a run.
    movies_encodings: tuple[str, ...] = ("utf-8", "latin-1")


_CSV = Layout(
    "ratings.csv",
    ",",
    True,
    ("userId", "movieId", "rating", "timestamp"),
    "movies.csv",
    ",",
    True,
    ("movieId", "title"),
)
_DAT = Layout("ratings.dat", "::", False, ("0", "1", "2", "3"), "movies.dat", "::", False, ("0", "1"))
LAYOUTS = {
    "ml-100k": Layout("u.data", "\t", False, ("0", "1", "2", "3"), "u.item", "|", False, ("0", "1"), ("latin-1",)),
    "ml-1m": replace(_DAT, movies_encodings=("latin-1", "utf-8")),
    "ml-10m": _DAT,
    "ml-20m": _CSV,
    "ml-25m": _CSV,
    "ml-latest-small": _CSV,
}
# Copies shipped inside the package (redistributable under the GroupLens terms beside them).
BUNDLED = {"ml-latest-small": "ml-latest-small"}


def bundled_path(name: str) -> Path:
    """The ratings file of a dataset shipped inside the installed package."""
    if name not in BUNDLED:
        raise UserError(f"Unknown bundled dataset {name!r}: choose one of {', '.join(sorted(BUNDLED))}.")
    root = resources.files("seqrec_cli.data") / "bundled" / BUNDLED[name]
    return Path(str(root / (LAYOUTS[name].ratings + ".gz")))


def _find(folder: Path, filename: str) -> Optional[Path]:
    """`filename` (or its .gz) in `folder` or one level below it (an unzipped release's own folder)."""
    for candidate in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
        for name in (filename, filename + ".gz"):
            if (candidate / name).is_file():
                return candidate / name
    return None


def ratings_file(cfg: DatasetConfig, download: bool = True) -> Path:
    """The ratings file to read for `cfg`, downloading the release when that is the only way."""
    layout = LAYOUTS[cfg.name]
    if cfg.path:
        path = Path(cfg.path).expanduser()
        if path.is_file():
            return path
        if not path.is_dir():
            raise UserError(f"Dataset path not found: {path} (dataset {cfg.name}).")
        found = _find(path, layout.ratings)
        if found is None:
            raise UserError(f"No {layout.ratings} in {path} or the folders in it (dataset {cfg.name}).")
        return found
    if cfg.name in BUNDLED and cfg.url is None:
        return bundled_path(cfg.name)
    root = downloads.data_dir(cfg.data_dir)
    folder = root / cfg.name
    found = _find(folder, layout.ratings) if folder.is_dir() else None
    if found is not None:
        return found
    if not download:
        raise UserError(f"Dataset {cfg.name} is not in {folder}.")
    folder = downloads.fetch(cfg.name, root, layout.ratings, url=cfg.url, sha256=cfg.sha256)
    return folder / layout.ratings


def read_ratings(path: Path, cfg: DatasetConfig) -> pd.DataFrame:
    """The ratings of a MovieLens release as the standard event table."""
    layout = LAYOUTS[cfg.name]
    user, item, rating, time = layout.columns
    cols = EventColumns(
        user=user,
        item=item,
        time=time,
        rating=rating if cfg.min_rating is not None else None,  # read only when used
        id_type=cfg.id_type,
        time_format=cfg.time_format,
    )
    opts = ReadOptions(sep=layout.sep, header=layout.header, encoding=cfg.encoding, on_bad_lines=cfg.on_bad_lines)
    df = read_delimited(path, cols.wanted, readers.id_options(opts, [user, item], cfg.id_type))
    return columns.table_events(df, str(path), cols)


def titles(cfg: DatasetConfig) -> Optional[dict]:
    """Original item id -> title from the release's movies file, or None when it is not there."""
    if cfg.name not in LAYOUTS:
        return None
    layout = LAYOUTS[cfg.name]
    try:
        ratings = ratings_file(cfg, download=False)
    except UserError:
        return None
    movies = _find(ratings.parent, layout.movies)
    if movies is None or movies.parent != ratings.parent:
        return None
    id_col, title_col = layout.movies_columns
    for encoding in layout.movies_encodings:
        try:
            opts = ReadOptions(
                sep=layout.movies_sep, header=layout.movies_header, encoding=encoding, id_columns=[id_col]
            )
            df = read_delimited(movies, [id_col, title_col], opts)
            ids = columns.ids(df[id_col], str(movies), id_col, cfg.id_type)
            return dict(zip(ids.tolist(), df[title_col].astype(str).tolist()))
        except UserError as exc:  # titles are a nicety: never stop a run over them
            problem = exc
    log.warning("No item titles for %s: %s", cfg.name, problem)
    return None


# u.item's 19 genre flags, in the order of ml-100k's u.genre.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_YEAR = r"\((\d{4})\)\s*$"


def movie_features(cfg: DatasetConfig) -> tuple[pd.DataFrame, list[str]]:
    """Genres ("A|B", empty when none) and release year of every movie of the release, and the
    movie ids as text: from `u.item` (ml-100k: genre flags, year of the release date, else of
    the title), `movies.dat` / `movies.csv` (genres column, year from the title)."""
    layout = LAYOUTS[cfg.name]
    ratings = ratings_file(cfg, download=False)
    movies = _find(ratings.parent, layout.movies)
    if movies is None:
        raise UserError(f"No {layout.movies} beside {ratings}: the genres and years of {cfg.name} are read from it.")
    if cfg.name == "ml-100k":
        wanted = ["0", "1", "2", *(str(5 + i) for i in range(len(ML100K_GENRES)))]
        opts = ReadOptions(sep="|", header=False, encoding="latin-1", text_columns=["1", "2"], id_columns=["0"])
        df = read_delimited(movies, wanted, opts)
        flags = df[wanted[3:]].to_numpy() == 1
        genres = ["|".join(g for g, on in zip(ML100K_GENRES, row) if on) for row in flags]
        year = df["2"].astype(str).str.extract(r"(\d{4})$")[0].fillna(df["1"].astype(str).str.extract(_YEAR)[0])
        id_col = "0"
    else:
        id_col, title_col = layout.movies_columns
        genre_col = "genres" if layout.movies_header else "2"
        opts = ReadOptions(
            sep=layout.movies_sep,
            header=layout.movies_header,
            encoding=layout.movies_encodings[0],
            text_columns=[title_col],
            id_columns=[id_col],
        )
        df = read_delimited(movies, [id_col, title_col, genre_col], opts)
        genres = [g if g != "(no genres listed)" else "" for g in df[genre_col].astype(str)]
        year = df[title_col].astype(str).str.extract(_YEAR)[0]
    keys = [str(v) for v in columns.ids(df[id_col], str(movies), id_col, cfg.id_type).tolist()]
    return pd.DataFrame({"genres": genres, "year": pd.to_numeric(year, errors="coerce")}), keys
