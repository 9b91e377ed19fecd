"""Item metadata (titles) where a dataset has it, so commands can show names next to ids."""

from __future__ import annotations

from typing import Optional

from seqrec_cli.config.schema import DatasetConfig
from seqrec_cli.data import movielens


def item_titles(cfg: DatasetConfig) -> Optional[dict]:
    """Original item id -> title, or None when the dataset carries no titles.

    MovieLens releases (bundled, downloaded, or at dataset.path) have them: `u.item` (latin-1,
    `|`-separated) for ml-100k, `movies.dat` (`::`) for ml-1m / ml-10m, `movies.csv` for the rest.
    Never downloads: titles are read from wherever the ratings were found.
    """
    if cfg.source in ("bundled", "movielens"):
        return movielens.titles(cfg)
    return None
