"""Item metadata (titles) where a dataset has it, so commands can show names next to ids."""

from __future__ import annotations

from typing import Optional

import pandas as pd

from seqrec_cli.config import DatasetConfig
from seqrec_cli.data.sources import bundled_path


def item_titles(cfg: DatasetConfig) -> Optional[dict]:
    """Original item id -> title, or None when the dataset carries no titles."""
    if cfg.source == "bundled" and cfg.name == "ml-latest-small":
        movies = pd.read_csv(bundled_path(cfg.name).with_name("movies.csv.gz"))
        return dict(zip(movies["movieId"].astype("int64"), movies["title"].astype(str)))
    return None
