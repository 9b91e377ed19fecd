"""A data file's bytes and its delimited text: the layer every file reader stands on.

Compression is recognised from the file's first bytes (not its name), so a gzip file named `.csv`
still reads. Delimited text goes through pandas' C parser; a line with more fields than the
header is refused (or dropped and counted, per `dataset.on_bad_lines`), never silently cut.
Anything a user can get wrong becomes a `UserError` naming the file and column (or line).
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pandas as pd

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


@dataclass(frozen=True)
class ReadOptions:
    """How a delimited file is read: what every reader passes down to `read_delimited`.

    `text_columns` are read as strings (ids that must keep leading zeros); `id_columns` that the
    C parser can only read as floats ("1.0", huge integers) are read again as text, so no id is
    rounded; `on_bad_lines` is `dataset.on_bad_lines` (error / warn / skip).
    """

    sep: str = ","
    header: bool = True
    encoding: Optional[str] = None
    text_columns: Sequence[str] = ()
    id_columns: Sequence[str] = ()
    on_bad_lines: str = "error"


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


@dataclass(frozen=True)
class _Input:
    """What the C parser reads: the file (or its text with a multi-character separator rewritten),
    the separator it splits on, and pandas' compression / encoding arguments."""

    source: object
    sep: str
    kwargs: dict


def read_delimited(path: Path, wanted: Sequence[str], opts: ReadOptions = ReadOptions()) -> pd.DataFrame:
    """Columns `wanted` of a delimited text file, by name (header) or by number ("0", "1", ...).

    A line with more fields than the header (or, without one, the first line) is an error, or
    dropped and counted in `df.attrs["bad_lines"]` (`opts.on_bad_lines`).
    """
    require_file(path)
    opts = replace(opts, sep=separator(opts.sep))
    method, parquet = sniff(path)
    if parquet:
        raise UserError(f"{path} is a Parquet file: set dataset.format=parquet (or auto) to read it.")
    parsed = _Input(path, opts.sep, {"compression": method, "encoding": opts.encoding or "utf-8"})
    if len(opts.sep) > 1 and opts.sep != r"\s+":
        # Rewrite a literal multi-character separator (MovieLens' `::`) to one byte for the C parser.
        text = decode(read_bytes(path), path, opts.encoding)
        parsed = _Input(io.StringIO(text.replace(opts.sep, _UNIT_SEPARATOR)), _UNIT_SEPARATOR, {})
    with _parsing(path, method, opts):
        found = _header(parsed, opts.header)
        missing = [c for c in wanted if c not in found]
        if missing:
            how = "the columns found are" if opts.header else "without a header the columns are numbered"
            raise UserError(
                f"{path} has no column {', '.join(map(repr, missing))}: {how} {', '.join(map(repr, found))}."
            )
        df, bad = _read_columns(parsed, wanted, opts)
        floats = [
            c
            for c in dict.fromkeys(opts.id_columns)
            if c not in opts.text_columns and pd.api.types.is_float_dtype(df[c])
        ]
        if floats:
            again, _ = _read_columns(parsed, wanted, replace(opts, text_columns=[*opts.text_columns, *floats]))
            df[floats] = again[floats]
    if len(df) == 0:
        raise UserError(
            f"Dataset file {path} has a header but no rows." if opts.header else f"Dataset file {path} is empty."
        )
    if bad:
        _report_bad_lines(df, bad, path, opts)
    return df


# Rows per parsing chunk: every column is parsed (the C parser checks field counts only without
# `usecols`), and only the wanted ones are kept, so the unused columns cost one chunk of memory.
_CHUNK_ROWS = 1_000_000
_SKIPPED = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")


def _read_columns(
    parsed: _Input, wanted: Sequence[str], opts: ReadOptions
) -> tuple[pd.DataFrame, list[tuple[int, int, int]]]:
    """The `wanted` columns, and (line, expected fields, fields) of every line dropped as too long."""
    if isinstance(parsed.source, io.StringIO):
        parsed.source.seek(0)
    header = opts.header
    keys = list(dict.fromkeys(wanted if header else (int(c) for c in wanted)))
    dtype = {(c if header else int(c)): str for c in opts.text_columns}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        # pandas' "warn" drops a bad line with a ParserWarning naming it: recorded here, for both
        # warn and skip, so that every dropped line is counted.
        reader = pd.read_csv(
            parsed.source,
            sep=parsed.sep,
            header=0 if header else None,
            index_col=False,
            dtype=dtype or None,
            engine="c",
            chunksize=_CHUNK_ROWS,
            on_bad_lines="error" if opts.on_bad_lines == "error" else "warn",
            **parsed.kwargs,
        )
        with reader:
            parts = [chunk[keys] for chunk in reader]
    df = pd.concat(parts, ignore_index=True) if len(parts) != 1 else parts[0]
    del parts
    df.columns = [str(c) for c in df.columns]
    bad = [tuple(map(int, m.groups())) for w in caught for m in _SKIPPED.finditer(str(w.message))]
    return df, bad


def _report_bad_lines(df: pd.DataFrame, bad: list[tuple[int, int, int]], path: Path, opts: ReadOptions) -> None:
    """Lines dropped under `dataset.on_bad_lines=warn|skip`: logged and counted in `df.attrs`."""
    line, expected, fields = bad[0]
    what = "the header" if opts.header else "the first line"
    (log.warning if opts.on_bad_lines == "warn" else log.info)(
        "%s: dropped %d line%s with more fields than %s (%d); the first is line %d (%d fields) "
        "(dataset.on_bad_lines=%s).",
        path,
        len(bad),
        "s" if len(bad) > 1 else "",
        what,
        expected,
        line,
        fields,
        opts.on_bad_lines,
    )
    df.attrs["bad_lines"] = {
        "action": opts.on_bad_lines,
        "dropped_lines": len(bad),
        "first_line": line,
        "first_line_fields": fields,
        "expected_fields": expected,
    }


@contextmanager
def _parsing(path: Path, method: Optional[str], opts: ReadOptions) -> Iterator[None]:
    """Turn pandas' and the decompressors' exceptions into one sentence about `path`."""
    try:
        yield
    except UserError:
        raise
    except pd.errors.EmptyDataError:
        raise UserError(f"Dataset file {path} is empty.") from None
    except UnicodeDecodeError as exc:
        raise _not_text(path, opts.encoding, exc) from None
    except ImportError as exc:  # e.g. zstd without the zstandard package
        raise UserError(f"Could not read the {method}-compressed file {path}: {exc}.") from None
    except LookupError:
        raise UserError(f"Unknown text encoding dataset.encoding={opts.encoding!r}.") from None
    except _DAMAGED as exc:
        raise UserError(
            f"Could not read {path}: its {method or 'file'} data is damaged or truncated ({exc})."
        ) from None
    except pd.errors.ParserError as exc:
        raise _parse_error(path, opts.sep, exc, opts.header) from None
    except ValueError as exc:
        shown = "whitespace" if opts.sep == r"\s+" else opts.sep
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
    with _parsing(path, method, ReadOptions(sep=sep, encoding=encoding)):
        return _header(_Input(path, sep, {"compression": method, "encoding": encoding or "utf-8"}), True)


def _header(parsed: _Input, header: bool) -> list[str]:
    """Column names (header) or numbers (no header), from the first line only."""
    kwargs = parsed.kwargs
    if header:
        return [str(c) for c in pd.read_csv(parsed.source, sep=parsed.sep, nrows=0, engine="c", **kwargs).columns]
    first = pd.read_csv(parsed.source, sep=parsed.sep, header=None, nrows=1, engine="c", **kwargs)
    return [str(c) for c in range(first.shape[1])]
