"""File readers: delimited tables, Parquet, RecBole atomic files, sequence and pair files.

Each reader returns the standard event table (`user`, `item`, optional `time` and `rating`) with
rows in the file's own order: preprocessing breaks timestamp ties by that order, so nothing here
sorts. Compression is recognised from the file's first bytes (not its name), so a gzip file named
`.csv` still reads. A line with more fields than the header is refused (or dropped and counted, per
`dataset.on_bad_lines`), never silently cut. Anything a user can get wrong becomes a `UserError`
naming the file and column (or line).
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import lzma
import re
import warnings
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import pandas as pd

from seqrec_cli.data import columns
from seqrec_cli.errors import UserError

log = logging.getLogger(__name__)

# Separators that are awkward to type on a command line.
SEPARATORS = {"\\t": "\t", "tab": "\t", "space": " ", "whitespace": r"\s+"}
# A byte that never occurs in real text data: multi-character separators are rewritten to it so the
# fast C parser can read them (pandas would otherwise fall back to its pure-Python engine).
_UNIT_SEPARATOR = "\x1f"

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_DAMAGED = (EOFError, OSError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)


def separator(sep: str) -> str:
    """The real separator for a configured one (`\\t`, `tab`, `space`, `whitespace` spelled out)."""
    return SEPARATORS.get(sep, sep)


def require_file(path: Path) -> Path:
    """`path` if it is a readable file; otherwise one sentence saying what is wrong."""
    if path.is_dir():
        raise UserError(f"Dataset path {path} is a folder; point dataset.path at the data file in it.")
    if not path.is_file():
        raise UserError(f"Dataset file not found: {path}.")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise UserError(f"Cannot open the dataset file {path} ({exc.strerror or exc}).") from None
    return path


def sniff(path: Path) -> tuple[Optional[str], bool]:
    """(compression method or None, whether it is Parquet) from the first bytes of the file."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PAR1"):
        return None, True
    for magic, method in _MAGIC:
        if head.startswith(magic):
            return method, False
    return None, False


def read_bytes(path: Path) -> bytes:
    """The whole file, decompressed when its first bytes say it is compressed."""
    require_file(path)
    method, _ = sniff(path)
    try:
        if method == "gzip":
            return gzip.decompress(path.read_bytes())
        if method == "bz2":
            return bz2.decompress(path.read_bytes())
        if method == "xz":
            return lzma.decompress(path.read_bytes())
        if method == "zip":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                if len(names) != 1:
                    raise UserError(
                        f"{path} is a zip archive holding {len(names)} files: unzip it and point dataset.path "
                        "at the data file."
                    )
                return zf.read(names[0])
        if method == "zstd":
            raise UserError(f"{path} is zstd-compressed: decompress it first (zstd -d).")
        return path.read_bytes()
    except UserError:
        raise
    except _DAMAGED as exc:
        raise UserError(f"Could not read {path}: its {method} data is damaged or truncated ({exc}).") from None


def decode(raw: bytes, path: Path, encoding: Optional[str]) -> str:
    try:
        return raw.decode(encoding or "utf-8")
    except UnicodeDecodeError as exc:
        raise _not_text(path, encoding, exc) from None
    except LookupError:
        raise UserError(f"Unknown text encoding dataset.encoding={encoding!r}.") from None


def _not_text(path: Path, encoding: Optional[str], exc: UnicodeDecodeError) -> UserError:
    return UserError(
        f"{path} is not {encoding or 'UTF-8'} text (byte {exc.object[exc.start : exc.start + 1]!r} at "
        f"position {exc.start}): if it is text in another encoding set dataset.encoding (e.g. latin-1), "
        "otherwise check that it is the right file."
    )


def read_delimited(
    path: Path,
    sep: str,
    header: bool,
    wanted: Sequence[str],
    encoding: Optional[str] = None,
    text_columns: Sequence[str] = (),
    id_columns: Sequence[str] = (),
    on_bad_lines: str = "error",
) -> pd.DataFrame:
    """Columns `wanted` of a delimited text file, by name (header) or by number ("0", "1", ...).

    `text_columns` are read as strings (ids that must keep leading zeros). `id_columns` that the
    C parser can only read as floats ("1.0", huge integers) are read again as text, so no id is
    rounded. A line with more fields than the header (or, without one, the first line) is an
    error, or kept / dropped and counted in `df.attrs["bad_lines"]` (`on_bad_lines`).
    """
    require_file(path)
    sep = separator(sep)
    method, parquet = sniff(path)
    if parquet:
        raise UserError(f"{path} is a Parquet file: set dataset.format=parquet (or auto) to read it.")
    source: object = path
    configured_sep = sep
    kwargs: dict = {"compression": method, "encoding": encoding or "utf-8"}
    if len(sep) > 1 and sep != r"\s+":
        # Rewrite a literal multi-character separator (MovieLens' `::`) to one byte for the C parser.
        text = decode(read_bytes(path), path, encoding)
        source = io.StringIO(text.replace(sep, _UNIT_SEPARATOR))
        sep, kwargs = _UNIT_SEPARATOR, {}
    with _parsing(path, configured_sep, method, encoding, header):
        found = _header(source, sep, header, kwargs)
        missing = [c for c in wanted if c not in found]
        if missing:
            how = "the columns found are" if header else "without a header the columns are numbered"
            raise UserError(
                f"{path} has no column {', '.join(map(repr, missing))}: {how} {', '.join(map(repr, found))}."
            )
        df, bad = _read_columns(source, sep, header, wanted, text_columns, kwargs, on_bad_lines)
        floats = [c for c in dict.fromkeys(id_columns) if c not in text_columns and pd.api.types.is_float_dtype(df[c])]
        if floats:
            again, _ = _read_columns(source, sep, header, wanted, [*text_columns, *floats], kwargs, on_bad_lines)
            df[floats] = again[floats]
    if len(df) == 0:
        raise UserError(
            f"Dataset file {path} has a header but no rows." if header else f"Dataset file {path} is empty."
        )
    if bad:
        _report_bad_lines(df, bad, path, header, on_bad_lines)
    return df


# Rows per parsing chunk: every column is parsed (the C parser checks field counts only without
# `usecols`), and only the wanted ones are kept, so the unused columns cost one chunk of memory.
_CHUNK_ROWS = 1_000_000
_SKIPPED = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")


def _read_columns(
    source: object,
    sep: str,
    header: bool,
    wanted: Sequence[str],
    text_columns: Sequence[str],
    kwargs: dict,
    on_bad_lines: str,
) -> tuple[pd.DataFrame, list[tuple[int, int, int]]]:
    """The `wanted` columns, and (line, expected fields, fields) of every line dropped as too long."""
    if isinstance(source, io.StringIO):
        source.seek(0)
    keys = list(dict.fromkeys(wanted if header else (int(c) for c in wanted)))
    dtype = {(c if header else int(c)): str for c in text_columns}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        # pandas' "warn" drops a bad line with a ParserWarning naming it: recorded here, for both
        # warn and skip, so that every dropped line is counted.
        reader = pd.read_csv(
            source,
            sep=sep,
            header=0 if header else None,
            index_col=False,
            dtype=dtype or None,
            engine="c",
            chunksize=_CHUNK_ROWS,
            on_bad_lines="error" if on_bad_lines == "error" else "warn",
            **kwargs,
        )
        with reader:
            parts = [chunk[keys] for chunk in reader]
    df = pd.concat(parts, ignore_index=True) if len(parts) != 1 else parts[0]
    del parts
    df.columns = [str(c) for c in df.columns]
    bad = [tuple(map(int, m.groups())) for w in caught for m in _SKIPPED.finditer(str(w.message))]
    return df, bad


def _report_bad_lines(
    df: pd.DataFrame, bad: list[tuple[int, int, int]], path: Path, header: bool, on_bad_lines: str
) -> None:
    """Lines dropped under `dataset.on_bad_lines=warn|skip`: logged and counted in `df.attrs`."""
    line, expected, fields = bad[0]
    what = "the header" if header else "the first line"
    (log.warning if on_bad_lines == "warn" else log.info)(
        "%s: dropped %d line%s with more fields than %s (%d); the first is line %d (%d fields) "
        "(dataset.on_bad_lines=%s).",
        path,
        len(bad),
        "s" if len(bad) > 1 else "",
        what,
        expected,
        line,
        fields,
        on_bad_lines,
    )
    df.attrs["bad_lines"] = {
        "action": on_bad_lines,
        "dropped_lines": len(bad),
        "first_line": line,
        "first_line_fields": fields,
        "expected_fields": expected,
    }


@contextmanager
def _parsing(
    path: Path, sep: str, method: Optional[str], encoding: Optional[str], header: bool = True
) -> Iterator[None]:
    """Turn pandas' and the decompressors' exceptions into one sentence about `path`."""
    try:
        yield
    except UserError:
        raise
    except pd.errors.EmptyDataError:
        raise UserError(f"Dataset file {path} is empty.") from None
    except UnicodeDecodeError as exc:
        raise _not_text(path, encoding, exc) from None
    except ImportError as exc:  # e.g. zstd without the zstandard package
        raise UserError(f"Could not read the {method}-compressed file {path}: {exc}.") from None
    except LookupError:
        raise UserError(f"Unknown text encoding dataset.encoding={encoding!r}.") from None
    except _DAMAGED as exc:
        raise UserError(
            f"Could not read {path}: its {method or 'file'} data is damaged or truncated ({exc})."
        ) from None
    except pd.errors.ParserError as exc:
        raise _parse_error(path, sep, exc, header) from None
    except ValueError as exc:
        shown = "whitespace" if sep == r"\s+" else sep
        raise UserError(
            f"Could not parse {path} as a table with separator {shown!r}: {str(exc).splitlines()[0]}."
        ) from None


_TOO_MANY = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _parse_error(path: Path, sep: str, exc: Exception, header: bool) -> UserError:
    """A line with too many fields names itself and the settings that accept it; else pandas' reason."""
    found = _TOO_MANY.search(str(exc))
    if found:
        expected, line, fields = map(int, found.groups())
        return UserError(
            f"{path}: line {line} has {fields} fields where {'the header' if header else 'the first line'} has "
            f"{expected}: fix the file, "
            "or set dataset.on_bad_lines=warn (or skip) to drop such lines and count them in data_summary.json."
        )
    shown = "whitespace" if sep == r"\s+" else sep
    return UserError(f"Could not parse {path} as a table with separator {shown!r}: {str(exc).splitlines()[0]}.")


def header_names(path: Path, sep: str, encoding: Optional[str]) -> list[str]:
    """The names in the first line of a delimited file (compressed or not), reading nothing more."""
    method, _ = sniff(require_file(path))
    with _parsing(path, sep, method, encoding):
        return _header(path, sep, True, {"compression": method, "encoding": encoding or "utf-8"})


def _header(source: object, sep: str, header: bool, kwargs: dict) -> list[str]:
    """Column names (header) or numbers (no header), from the first line only."""
    if header:
        return [str(c) for c in pd.read_csv(source, sep=sep, nrows=0, engine="c", **kwargs).columns]
    first = pd.read_csv(source, sep=sep, header=None, nrows=1, engine="c", **kwargs)
    return [str(c) for c in range(first.shape[1])]


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


def read_table(
    path: Path,
    fmt: str,
    sep: str,
    header: bool,
    user_col: str,
    item_col: str,
    time_col: Optional[str],
    rating_col: Optional[str],
    encoding: Optional[str],
    id_type: str,
    on_bad_lines: str = "error",
    time_format: Optional[str] = None,
) -> pd.DataFrame:
    """A CSV / TSV / Parquet table with named (or, without a header, numbered) columns."""
    require_file(path)
    wanted = list(dict.fromkeys(c for c in (user_col, item_col, time_col, rating_col) if c))
    parquet = fmt == "parquet" or (fmt == "auto" and (sniff(path)[1] or path.suffix.lower() in (".parquet", ".pq")))
    if parquet:
        df = read_parquet(path, wanted)
    else:
        text_cols = [user_col, item_col] if id_type == "str" else []
        df = read_delimited(path, sep, header, wanted, encoding, text_cols, [user_col, item_col], on_bad_lines)
    return columns.table_events(df, str(path), user_col, item_col, time_col, rating_col, id_type, time_format)


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
    path: Path,
    user_col: str,
    item_col: str,
    time_col: Optional[str],
    rating_col: Optional[str],
    encoding: Optional[str],
    id_type: str,
    on_bad_lines: str = "error",
    time_format: Optional[str] = None,
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
    wanted = list(dict.fromkeys(c for c in (user_col, item_col, time_col, rating_col) if c))
    missing = [c for c in wanted if c not in names]
    if missing:
        raise UserError(
            f"{path} has no field {', '.join(map(repr, missing))}: the fields found are {', '.join(map(repr, fields))}."
        )
    for col in (user_col, item_col):
        if kinds[col].endswith("_seq"):
            raise UserError(
                f"Field {names[col]!r} of {path} is a sequence field; user and item ids must be single tokens."
            )
    text_cols = [names[user_col], names[item_col]] if id_type == "str" else []
    df = read_delimited(
        path,
        "\t",
        True,
        [names[c] for c in wanted],
        encoding,
        text_cols,
        [names[user_col], names[item_col]],
        on_bad_lines,
    )
    df.columns = [c.split(":", 1)[0] for c in df.columns]
    return columns.table_events(df, str(path), user_col, item_col, time_col, rating_col, id_type, time_format)


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
    text_cols = ["0", "1"] if id_type == "str" else []
    df = read_delimited(require_file(path), r"\s+", False, ["0", "1"], encoding, text_cols, ["0", "1"], on_bad_lines)
    where = str(path)
    events = pd.DataFrame(
        {
            "user": columns.ids(df["0"], where, "user (first column)", id_type),
            "item": columns.ids(df["1"], where, "item (second column)", id_type),
        }
    )
    events.attrs.update(df.attrs)
    return events
