"""Read a CSV (plain or gzipped) or Parquet file into text columns, keeping each record's physical line.

File-level problems (unreadable, corrupt gzip, not UTF-8, empty, missing columns) raise ImportFormatError;
records that cannot be split into the right number of fields become BadRows for the validation step.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from siyu.data.importing.report import BadRow, ImportFormatError


@dataclass
class Raw:
    """A file's records as text columns ("" for missing), with the physical line of each record."""

    frame: pd.DataFrame
    lines: np.ndarray
    structural: list[BadRow]  # records that could not even be split into the right fields
    rows_read: int


_TEXT = pd.StringDtype("pyarrow")  # Arrow-backed strings: vectorised .str ops, ~10x faster than object


def _columns_error(name: str, missing: list[str], expected: tuple[str, ...]) -> ImportFormatError:
    listed = ", ".join(f"`{col}`" for col in missing)
    noun = "column" if len(missing) == 1 else "columns"
    return ImportFormatError(f"{noun} {listed} missing in {name} (expected {', '.join(expected)})")


def _text_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper={pa.string(): _TEXT}.get)


def _read_bytes(path: Path) -> bytes:
    """Whole file, decompressed; a broken gzip is a file-level error."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ImportFormatError(f"{path.name} is a corrupt or truncated gzip file ({exc})") from exc
    except OSError as exc:
        raise ImportFormatError(f"cannot read {path.name}: {exc}") from exc


def _check_utf8(data: bytes, name: str) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFormatError(f"{name} is not UTF-8 text (invalid byte on line {line}); re-save it as UTF-8") from exc


def _split_header(data: bytes, name: str, columns: tuple[str, ...]) -> tuple[list[str], bytes, int]:
    """(header cells, the bytes after the header line, physical line number of that first body line)."""
    pos, line = 0, 1
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        if data[pos:end].strip():
            cells = next(csv.reader([data[pos:end].decode("utf-8").rstrip("\r")]))
            return [cell.strip() for cell in cells], data[end + 1 :], line + 1
        pos, line = end + 1, line + 1
    raise ImportFormatError(f"{name} is empty (expected a header row: {', '.join(columns)})")


def _record_lines(body: bytes) -> np.ndarray | None:
    """1-based lines of the non-blank lines of `body`, or None when a record might span lines.

    Lines are records only if no line has an odd number of quotes (a quoted newline or a quote left
    open by truncation) and there is no bare CR (which Arrow also treats as a line break).
    """
    buf = np.frombuffer(body, dtype=np.uint8)
    newlines = np.flatnonzero(buf == ord("\n"))
    if np.count_nonzero(buf == ord("\r")) != np.count_nonzero(buf[newlines[newlines > 0] - 1] == ord("\r")):
        return None
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    crlf = np.zeros(len(ends), dtype=bool)
    crlf[ends > starts] = buf[ends[ends > starts] - 1] == ord("\r")
    quotes = np.bincount(np.searchsorted(newlines, np.flatnonzero(buf == ord('"'))), minlength=len(starts))
    if np.any(quotes % 2):
        return None
    return np.flatnonzero(ends - starts - crlf > 0) + 1


def _parse_arrow(body: bytes, header: list[str], name: str, first_line: int) -> Raw | None:
    """Fast path: Arrow's CSV reader, with physical lines recovered from the one-record-per-line layout."""
    lines = _record_lines(body)
    if lines is None:
        return None
    invalid: list[tuple[int | None, int]] = []

    def on_invalid(row: Any) -> str:
        invalid.append((row.number, row.actual_columns))
        return "skip"

    if len(lines) == 0:
        return Raw(pd.DataFrame({col: pd.Series(dtype=_TEXT) for col in header}), lines, [], 0)
    try:
        table = pcsv.read_csv(
            pa.py_buffer(body),
            read_options=pcsv.ReadOptions(column_names=header, use_threads=False),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={col: pa.string() for col in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:  # e.g. a single line longer than Arrow's block size
        return None
    if table.num_rows + len(invalid) != len(lines) or any(number is None for number, _ in invalid):
        return None  # layout assumption broken: let the stdlib reader work it out
    skipped = np.asarray([number for number, _ in invalid], dtype=np.int64) - 1
    physical = lines + first_line - 1
    bad = [_width_error(name, int(physical[i]), len(header), got) for i, (_, got) in zip(skipped, invalid, strict=True)]
    frame = _text_frame(table)
    return Raw(frame, np.delete(physical, skipped), bad, len(lines))


def _width_error(name: str, line: int, expected: int, got: int) -> BadRow:
    return BadRow(name, line, f"expected {expected} fields, got {got} (truncated line or unquoted comma?)")


def _parse_stdlib(body: bytes, header: list[str], name: str, first_line: int) -> Raw:
    """Slow but exact path for files where a record may span lines (quoted newlines, open quotes)."""
    reader = csv.reader(io.StringIO(body.decode("utf-8"), newline=""), strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    read = 0
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a quote left open by a truncated last line
            bad.append(BadRow(name, start + first_line - 1, f"malformed CSV record: {exc}"))
            read += 1
        else:
            if row:  # a blank line is not a record
                read += 1
                if len(row) == len(header):
                    rows.append(row)
                    lines.append(start + first_line - 1)
                else:
                    bad.append(_width_error(name, start + first_line - 1, len(header), len(row)))
        start = reader.line_num + 1
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(header)
    table = pa.table({col: pa.array(values, pa.string()) for col, values in zip(header, columns, strict=True)})
    frame = _text_frame(table)
    return Raw(frame, np.asarray(lines, dtype=np.int64), bad, read)


def _read_csv(path: Path, columns: tuple[str, ...], has_header: bool) -> Raw:
    """Plain or gzipped CSV; the header (if the format has one) may order columns freely and add extras."""
    name = path.name
    data = _read_bytes(path).removeprefix(b"\xef\xbb\xbf")  # Excel's BOM
    _check_utf8(data, name)
    if has_header:
        header, body, first_line = _split_header(data, name, columns)
        missing = [col for col in columns if col not in header]
        if missing:
            raise _columns_error(name, missing, columns)
        twice = [col for col in columns if header.count(col) > 1]
        if twice:
            raise ImportFormatError(f"column `{twice[0]}` appears more than once in the header of {name}")
    elif not data.strip():
        raise ImportFormatError(f"{name} is empty (expected rows of {', '.join(columns)}, no header)")
    else:
        _check_first_record_width(data, name, columns)
        header, body, first_line = list(columns), data, 1
    raw = _parse_arrow(body, header, name, first_line) or _parse_stdlib(body, header, name, first_line)
    if not has_header:
        raw = _drop_header_like(raw, columns)
    if raw.rows_read == 0:
        raise ImportFormatError(f"{name} has no data rows" + (" (only a header)" if has_header else ""))
    raw.frame = raw.frame[list(columns)]
    return raw


def _check_first_record_width(data: bytes, name: str, columns: tuple[str, ...]) -> None:
    """A headerless file whose first record is short has the wrong layout, not one bad row per line.

    Its columns are known only by position, so the missing ones are the last: name them, as a header would.
    """
    first, _, _ = _split_header(data, name, columns)
    if len(first) < len(columns):
        error = _columns_error(name, list(columns[len(first) :]), columns)
        raise ImportFormatError(f"{error} (its first row has {len(first)} fields, no header; expected {len(columns)})")


def _drop_header_like(raw: Raw, columns: tuple[str, ...]) -> Raw:
    """Headerless formats still accept a header someone added by hand, instead of calling it a bad row."""
    if len(raw.lines) and raw.lines[0] == 1 and raw.frame.iloc[0].str.strip().str.lower().tolist() == list(columns):
        return Raw(raw.frame.iloc[1:].reset_index(drop=True), raw.lines[1:], raw.structural, raw.rows_read - 1)
    return raw


def _read_parquet(path: Path, columns: tuple[str, ...]) -> Raw:
    """Parquet columns are cast to text so one validation path serves CSV and Parquet; line = row index + 1."""
    name = path.name
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ImportFormatError(f"{name} is not a readable Parquet file ({exc})") from exc
    missing = [col for col in columns if col not in table.column_names]
    if missing:
        raise _columns_error(name, missing, columns)
    if table.num_rows == 0:
        raise ImportFormatError(f"{name} has no data rows")
    text = pa.table({col: _as_text(table.column(col)) for col in columns})
    frame = _text_frame(text)
    return Raw(frame, np.arange(1, table.num_rows + 1, dtype=np.int64), [], table.num_rows)


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
    return pc.fill_null(text, "")


def read(path: Path, columns: tuple[str, ...], has_header: bool) -> Raw:
    if path.suffix == ".parquet":
        return _read_parquet(path, columns)
    return _read_csv(path, columns, has_header)
