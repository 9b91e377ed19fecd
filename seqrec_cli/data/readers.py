"""Event readers: CSV / TSV / Parquet tables, RecBole atomic files, sequence and pair files.

Each reader returns the standard event table (`user`, `item`, optional `time` and `rating`) with
rows in the file's own order: preprocessing breaks timestamp ties by that order, so nothing here
sorts. The bytes and the delimited text (compression sniffed from content, encodings, lines with
extra fields) are `data/delimited.py`'s; the typed columns `data/columns.py`'s. Anything a user
can get wrong becomes a `UserError` naming the file and column (or line).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from seqrec_cli.data import columns
from seqrec_cli.data.columns import EventColumns
from seqrec_cli.data.delimited import ReadOptions, decode, header_names, read_bytes, read_delimited, require_file, sniff
from seqrec_cli.errors import UserError


def id_options(opts: ReadOptions, id_columns: Sequence[str], id_type: str) -> ReadOptions:
    """`opts` reading the id columns exactly: as text with `dataset.id_type=str`; otherwise typed by
    `columns.ids`, the ones the parser can only read as floats read again as text."""
    return replace(opts, text_columns=list(id_columns) if id_type == "str" else [], id_columns=list(id_columns))


def is_parquet(path: Path, fmt: str) -> bool:
    """`format=parquet`, or `auto` and the file starts like Parquet (or is named like it)."""
    return fmt == "parquet" or (fmt == "auto" and (sniff(path)[1] or path.suffix.lower() in (".parquet", ".pq")))


def read_parquet(path: Path, wanted: Sequence[str]) -> pd.DataFrame:
    require_file(path)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"Reading the Parquet file {path} needs pyarrow: pip install 'seqrec-cli[parquet]'.") from None
    try:
        found = list(pq.ParquetFile(path).schema_arrow.names)
        missing = [c for c in wanted if c not in found]
        if missing:
            raise UserError(
                f"{path} has no column {', '.join(map(repr, missing))}: the columns found are "
                f"{', '.join(map(repr, found))}."
            )
        df = pd.read_parquet(path, columns=list(wanted))
    except UserError:
        raise
    except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError family
        raise UserError(f"Could not read {path} as Parquet: {str(exc).splitlines()[0]}.") from None
    if len(df) == 0:
        raise UserError(f"Dataset file {path} has no rows.")
    return df


def read_table(path: Path, fmt: str, cols: EventColumns, opts: ReadOptions = ReadOptions()) -> pd.DataFrame:
    """A CSV / TSV / Parquet table with named (or, without a header, numbered) columns."""
    require_file(path)
    if is_parquet(path, fmt):
        df = read_parquet(path, cols.wanted)
    else:
        df = read_delimited(path, cols.wanted, id_options(opts, [cols.user, cols.item], cols.id_type))
    return columns.table_events(df, str(path), cols)


def atomic_file(path: Path) -> Path:
    """The `.inter` file for a RecBole dataset path: the file itself, or `<dir>/<dir>.inter`."""
    if not path.is_dir():
        return require_file(path)
    named = path / f"{path.name}.inter"
    if named.is_file():
        return named
    found = sorted(path.glob("*.inter"))
    if len(found) == 1:
        return found[0]
    raise UserError(
        f"Found {len(found)} .inter files in {path}: point dataset.path at the one to read."
        if found
        else f"No RecBole .inter file in {path}."
    )


def read_atomic(
    path: Path, cols: EventColumns, *, encoding: Optional[str] = None, on_bad_lines: str = "error"
) -> pd.DataFrame:
    """A RecBole atomic file: tab-separated with a typed header (`user_id:token item_id:token ...`).

    Columns are named without their `:type`; `token` ids keep the id rules of every other reader.
    """
    path = atomic_file(path)
    fields = header_names(path, "\t", encoding)
    untyped = [f for f in fields if ":" not in f]
    if untyped:
        raise UserError(
            f"{path} is not a RecBole atomic file: header field {untyped[0]!r} has no ':type' "
            "(expected e.g. 'user_id:token'); read plain tables with dataset=csv."
        )
    names = {f.split(":", 1)[0]: f for f in fields}
    kinds = {f.split(":", 1)[0]: f.split(":", 1)[1] for f in fields}
    missing = [c for c in cols.wanted if c not in names]
    if missing:
        raise UserError(
            f"{path} has no field {', '.join(map(repr, missing))}: the fields found are {', '.join(map(repr, fields))}."
        )
    for col in (cols.user, cols.item):
        if kinds[col].endswith("_seq"):
            raise UserError(
                f"Field {names[col]!r} of {path} is a sequence field; user and item ids must be single tokens."
            )
    opts = ReadOptions(sep="\t", encoding=encoding, on_bad_lines=on_bad_lines)
    ids = [names[cols.user], names[cols.item]]
    df = read_delimited(path, [names[c] for c in cols.wanted], id_options(opts, ids, cols.id_type))
    df.columns = [c.split(":", 1)[0] for c in df.columns]
    return columns.table_events(df, str(path), cols)


_TOKEN = re.compile(r"[^\s]+|\n")


def read_sequences(path: Path, encoding: Optional[str], id_type: str) -> pd.DataFrame:
    """One line per user, `user item item ...`, already in time order (the S3-Rec / ICLRec format).

    Tokenised by one regular-expression pass in C; line membership comes from a cumulative count
    of newlines, so no Python loop runs per line or per token.
    """
    text = decode(read_bytes(require_file(path)), path, encoding)
    tokens = np.array(_TOKEN.findall(text), dtype=object)
    del text
    newline = tokens == "\n"
    line = np.cumsum(newline)[~newline]
    tokens = tokens[~newline]
    if len(tokens) == 0:
        raise UserError(f"Dataset file {path} is empty.")
    first = np.ones(len(tokens), dtype=bool)
    first[1:] = line[1:] != line[:-1]
    owner = np.cumsum(first) - 1
    users = tokens[first][owner[~first]]
    items = tokens[~first]
    if len(items) == 0:
        raise UserError(f"{path} holds user ids but no items: expected lines of `user item item ...`.")
    where = str(path)
    return pd.DataFrame(
        {
            "user": columns.ids(pd.Series(users, dtype=object), where, "user (first token of a line)", id_type),
            "item": columns.ids(pd.Series(items, dtype=object), where, "item", id_type),
        }
    )


def read_pairs(path: Path, encoding: Optional[str], id_type: str, on_bad_lines: str = "error") -> pd.DataFrame:
    """One `user item` pair per line, whitespace-separated, in time order (the SASRec format)."""
    opts = ReadOptions(sep=r"\s+", header=False, encoding=encoding, on_bad_lines=on_bad_lines)
    df = read_delimited(require_file(path), ["0", "1"], id_options(opts, ["0", "1"], id_type))
    where = str(path)
    events = pd.DataFrame(
        {
            "user": columns.ids(df["0"], where, "user (first column)", id_type),
            "item": columns.ids(df["1"], where, "item (second column)", id_type),
        }
    )
    events.attrs.update(df.attrs)
    return events
