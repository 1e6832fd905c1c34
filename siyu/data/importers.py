"""Import real event logs (our own schema, Taobao UserBehavior, UCI Online Retail) into the data directory.

Every importer follows the same contract so a bad file can never damage what is already there:
read the whole file, validate every row (collecting *all* bad rows with their physical line numbers),
and only then write: items and prices are upserted, the events land as one new part file, each write
atomic. A file with bad rows is rejected as a whole unless the caller asks to skip them. A manifest of
content hashes makes re-importing the same file an error instead of silently doubling the events.
"""

from __future__ import annotations

import csv
import fcntl
import gzip
import hashlib
import io
import json
import os
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from siyu.data.schema import CHANNELS, EVENT_SCHEMA, EVENT_TYPES, ITEM_SCHEMA, PRICE_SCHEMA, USER_KEY_TYPES
from siyu.data.store import new_part_path, read_table, to_table, write_table_atomic
from siyu.settings import Settings

Format = Literal["events", "taobao", "online-retail"]

MAX_BAD_IN_MESSAGE = 10
# Values that spreadsheet / pandas exports write for a missing cell; as an identifier they are never real.
MISSING_TOKENS = frozenset({"nan", "none", "null", "nat"})
INT32_MAX = 2**31 - 1

# --------------------------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class BadRow:
    """One row that failed validation, located so the user can open the file at that line."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class ImportReport:
    """What an import read, wrote, skipped and why; returned on success and carried by ImportRejected."""

    file: str
    format: str
    rows_read: int = 0
    events_written: int = 0
    items_upserted: int = 0
    prices_upserted: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    events_part: str | None = None

    def summary(self) -> str:
        """A few human lines for the CLI."""
        rate = self.rows_read / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{self.file} ({self.format}): {self.rows_read:,} rows read in {self.seconds:.2f}s ({rate:,.0f} rows/s)",
            f"  written: {self.events_written:,} events, {self.items_upserted:,} items, "
            f"{self.prices_upserted:,} prices",
        ]
        if self.ignored:
            parts = ", ".join(f"{reason} {count:,}" for reason, count in sorted(self.ignored.items()))
            lines.append(f"  ignored (well-formed, not customer events): {parts}")
        if self.bad_rows:
            lines.append(f"  bad rows skipped: {len(self.bad_rows):,}")
            lines.extend(_first_bad(self.bad_rows, "    "))
        return "\n".join(lines)


def _first_bad(bad: list[BadRow], indent: str) -> list[str]:
    """`file:line: reason` for the first few bad rows, so a message stays readable for a broken file."""
    shown = [f"{indent}{row}" for row in bad[:MAX_BAD_IN_MESSAGE]]
    if len(bad) > MAX_BAD_IN_MESSAGE:
        shown.append(f"{indent}... and {len(bad) - MAX_BAD_IN_MESSAGE:,} more")
    return shown


class ImportFormatError(ValueError):
    """The file as a whole cannot be imported (missing, empty, wrong columns, corrupt, already imported)."""


class AlreadyImported(ImportFormatError):
    """The same bytes were imported before; importing again would duplicate every event."""


class ImportRejected(Exception):
    """Some rows are bad and skip_bad was not given: nothing was written."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        listing = "\n".join(_first_bad(report.bad_rows, "  "))
        super().__init__(
            f"{Path(report.file).name}: {len(report.bad_rows):,} bad row(s) out of {report.rows_read:,}; "
            f"nothing was written; fix the rows or pass --skip-bad\n{listing}"
        )


# --------------------------------------------------------------------------------------------- reading


@dataclass
class _Raw:
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


def _parse_arrow(body: bytes, header: list[str], name: str, first_line: int) -> _Raw | None:
    """Fast path: Arrow's CSV reader, with physical lines recovered from the one-record-per-line layout."""
    lines = _record_lines(body)
    if lines is None:
        return None
    invalid: list[tuple[int | None, int]] = []

    def on_invalid(row: Any) -> str:
        invalid.append((row.number, row.actual_columns))
        return "skip"

    if len(lines) == 0:
        return _Raw(pd.DataFrame({col: pd.Series(dtype=_TEXT) for col in header}), lines, [], 0)
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
    return _Raw(frame, np.delete(physical, skipped), bad, len(lines))


def _width_error(name: str, line: int, expected: int, got: int) -> BadRow:
    return BadRow(name, line, f"expected {expected} fields, got {got} (truncated line or unquoted comma?)")


def _parse_stdlib(body: bytes, header: list[str], name: str, first_line: int) -> _Raw:
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
    return _Raw(frame, np.asarray(lines, dtype=np.int64), bad, read)


def _read_csv(path: Path, columns: tuple[str, ...], has_header: bool) -> _Raw:
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
        header, body, first_line = list(columns), data, 1
    raw = _parse_arrow(body, header, name, first_line) or _parse_stdlib(body, header, name, first_line)
    if not has_header:
        raw = _drop_header_like(raw, columns)
    if raw.rows_read == 0:
        raise ImportFormatError(f"{name} has no data rows" + (" (only a header)" if has_header else ""))
    raw.frame = raw.frame[list(columns)]
    return raw


def _drop_header_like(raw: _Raw, columns: tuple[str, ...]) -> _Raw:
    """Headerless formats still accept a header someone added by hand, instead of calling it a bad row."""
    if len(raw.lines) and raw.lines[0] == 1 and raw.frame.iloc[0].str.strip().str.lower().tolist() == list(columns):
        return _Raw(raw.frame.iloc[1:].reset_index(drop=True), raw.lines[1:], raw.structural, raw.rows_read - 1)
    return raw


def _read_parquet(path: Path, columns: tuple[str, ...]) -> _Raw:
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
    return _Raw(frame, np.arange(1, table.num_rows + 1, dtype=np.int64), [], table.num_rows)


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
    return pc.fill_null(text, "")


def _read(path: Path, columns: tuple[str, ...], has_header: bool) -> _Raw:
    if path.suffix == ".parquet":
        return _read_parquet(path, columns)
    return _read_csv(path, columns, has_header)


# --------------------------------------------------------------------------------------------- validation


class _Rows:
    """Collects every reason a row is bad, so one run reports all problems rather than the first."""

    def __init__(self, file: str, lines: np.ndarray) -> None:
        self.file = file
        self.lines = lines
        self.bad = np.zeros(len(lines), dtype=bool)
        self._reasons: dict[int, list[str]] = defaultdict(list)

    def reject(self, mask: pd.Series | np.ndarray, reason: str, values: pd.Series | None = None) -> None:
        """Mark rows bad; `reason` may contain `{value}` (the offending cell, shortened)."""
        mask = np.asarray(mask, dtype=bool)
        for pos in np.flatnonzero(mask):
            text = reason.format(value=_show(values.iat[pos])) if values is not None else reason
            self._reasons[int(pos)].append(text)
        self.bad |= mask

    @property
    def good(self) -> np.ndarray:
        return ~self.bad

    def bad_rows(self, structural: list[BadRow]) -> list[BadRow]:
        found = [BadRow(self.file, int(self.lines[pos]), "; ".join(why)) for pos, why in self._reasons.items()]
        return sorted(structural + found, key=lambda row: row.line)


def _show(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _text(rows: _Rows, values: pd.Series, col: str, required: bool = True, digits: bool = False) -> pd.Series:
    """Stripped identifier; empty or a 'nan'-style export artefact is bad when the column is required."""
    values = values.str.strip()
    artefact = values.str.lower().isin(MISSING_TOKENS)
    rows.reject(artefact, f"{col} is {{value}} (a missing-value placeholder, not an id)", values)
    if required:
        rows.reject(values.eq(""), f"{col} is empty")
    if digits:
        not_digits = values.ne("") & ~artefact & ~values.str.fullmatch(r"\d+")
        rows.reject(not_digits, f"{col} {{value}} is not an integer", values)
    return values.mask(artefact | values.eq(""), "")


# Plain decimals only: "nan", "inf" and "1,5" are not prices or quantities.
_DECIMAL = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def _number(rows: _Rows, values: pd.Series, col: str, required: bool = True) -> pd.Series:
    """Float column; a cell that is present but not a finite number is bad (and so is a missing required one)."""
    values = values.str.strip()
    valid = values.str.fullmatch(_DECIMAL).to_numpy(dtype=bool)
    parsed = pc.cast(pa.array(values.where(valid, "0"), type=pa.string()), pa.float64()).to_numpy(zero_copy_only=False)
    valid &= np.isfinite(parsed)  # "1e400" overflows to inf
    parsed = pd.Series(np.where(valid, parsed, np.nan), index=values.index)
    present = values.ne("")
    rows.reject(present & ~valid, f"{col} {{value}} is not a number", values)
    if required:
        rows.reject(~present, f"{col} is empty")
    return parsed


def _integer(rows: _Rows, values: pd.Series, col: str, low: int, high: int) -> pd.Series:
    """Whole numbers within [low, high]; returns float64 with NaN where bad (int conversion is left to callers)."""
    parsed = _number(rows, values, col)
    whole = parsed.notna() & parsed.eq(np.floor(parsed))
    rows.reject(parsed.notna() & ~whole, f"{col} {{value}} is not an integer", values)
    rows.reject(whole & ~parsed.between(low, high), f"{col} {{value}} is out of range [{low}, {high}]", values)
    return parsed.where(whole & parsed.between(low, high))


_HAS_OFFSET = r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


def _timestamp(rows: _Rows, values: pd.Series, col: str, formats: tuple[str, ...]) -> pd.Series:
    """UTC timestamps; naive values are taken as UTC.

    Naive and offset-carrying strings are parsed separately: pandas 2 applies an earlier row's offset
    to later naive rows when they are parsed together.
    """
    values = values.str.strip()
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    aware = values.str.contains(_HAS_OFFSET, regex=True)
    for group in (aware, ~aware):
        for fmt in formats:
            todo = group & parsed.isna() & values.ne("")
            if todo.any():
                parsed[todo] = pd.to_datetime(values[todo], format=fmt, utc=True, errors="coerce")
    rows.reject(values.eq(""), f"{col} is empty")
    rows.reject(values.ne("") & parsed.isna(), f"{col} {{value}} is not a date/time ({' or '.join(formats)})", values)
    return parsed


def _choice(rows: _Rows, values: pd.Series, col: str, allowed: tuple[str, ...] | dict[str, str]) -> pd.Series:
    values = values.str.strip()
    rows.reject(~values.isin(list(allowed)), f"{col} {{value}} is not one of {', '.join(allowed)}", values)
    return values


# --------------------------------------------------------------------------------------------- conversions


@dataclass
class _Converted:
    """Validated output of one format: events plus the items / prices it implies."""

    events: pd.DataFrame
    items: pd.DataFrame | None = None
    prices: pd.DataFrame | None = None
    ignored: dict[str, int] = field(default_factory=dict)


def _event_frame(**columns: object) -> pd.DataFrame:
    """Events in EVENT_SCHEMA column order; scalars broadcast (None for null strings)."""
    frame = pd.DataFrame(columns)[EVENT_SCHEMA.names]
    frame["event_time"] = frame["event_time"].dt.floor("us")
    frame["quantity"] = frame["quantity"].astype(np.int64)
    frame["unit_price"] = frame["unit_price"].astype(np.float64)
    return frame.reset_index(drop=True)


# -- events (our own schema)

EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)
_ITEMLESS_EVENTS = ("search", "store_visit")


def _convert_events(frame: pd.DataFrame, rows: _Rows) -> _Converted:
    """Our schema as text: every column required, values checked against the allowed vocabularies."""
    when = _timestamp(rows, frame["event_time"], "event_time", ("ISO8601",))
    event_type = _choice(rows, frame["event_type"], "event_type", EVENT_TYPES)
    channel = _choice(rows, frame["channel"], "channel", CHANNELS)
    key_type = _choice(rows, frame["user_key_type"], "user_key_type", USER_KEY_TYPES)
    user_key = _text(rows, frame["user_key"], "user_key")
    session = _text(rows, frame["session_id"], "session_id")
    item = _text(rows, frame["item_id"], "item_id", required=False)
    store = _text(rows, frame["store_id"], "store_id", required=False)
    quantity = _integer(rows, frame["quantity"], "quantity", 0, INT32_MAX)
    price = _number(rows, frame["unit_price"], "unit_price", required=False)
    rows.reject(price < 0, "unit_price {value} is negative", frame["unit_price"])
    needs_item = ~event_type.isin(_ITEMLESS_EVENTS)
    rows.reject(needs_item & item.eq(""), "item_id is empty (required unless event_type is search/store_visit)")
    ok = rows.good
    events = _event_frame(
        event_time=when[ok],
        user_key=user_key[ok],
        user_key_type=key_type[ok],
        item_id=item[ok].replace("", None),
        event_type=event_type[ok],
        channel=channel[ok],
        store_id=store[ok].replace("", None),
        quantity=quantity[ok],
        unit_price=price[ok],
        session_id=session[ok],
    )
    return _Converted(events)


# -- Taobao UserBehavior

TAOBAO_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
TAOBAO_EVENT_TYPES = {"pv": "view", "cart": "add_to_cart", "fav": "favourite", "buy": "purchase"}
SESSION_GAP_SECONDS = 30 * 60
# The log covers late 2017; anything outside 1970..2100 is a corrupt value, not a real event.
_MAX_UNIX_SECONDS = 4_102_444_800


def _convert_taobao(frame: pd.DataFrame, rows: _Rows) -> _Converted:
    """App behaviour log keyed by account; sessions are cut at 30 minutes of inactivity."""
    user = _text(rows, frame["user_id"], "user_id", digits=True)
    item = _text(rows, frame["item_id"], "item_id", digits=True)
    category = _text(rows, frame["category_id"], "category_id", digits=True)
    behavior = _choice(rows, frame["behavior_type"], "behavior_type", TAOBAO_EVENT_TYPES)
    seconds = _integer(rows, frame["timestamp"], "timestamp", 0, _MAX_UNIX_SECONDS)
    ok = rows.good
    user, seconds = user[ok], seconds[ok].astype(np.int64)
    events = _event_frame(
        event_time=pd.to_datetime(seconds, unit="s", utc=True),
        user_key=user,
        user_key_type="account_id",
        item_id=item[ok],
        event_type=behavior[ok].map(TAOBAO_EVENT_TYPES),
        channel="app",
        store_id=None,
        quantity=1,
        unit_price=np.nan,
        session_id=_sessions(user, seconds),
    )
    items = _latest_category(item[ok], category[ok], seconds)
    return _Converted(events, items=items)


def _sessions(user: pd.Series, seconds: pd.Series) -> pd.Series:
    """`tb-{user}-{session start second}`: stable across files, unlike a per-file counter."""
    codes, _ = pd.factorize(user)
    secs = seconds.to_numpy()
    order = np.lexsort((secs, codes))
    sorted_codes, sorted_secs = codes[order], secs[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (sorted_codes[1:] != sorted_codes[:-1]) | (np.diff(sorted_secs) > SESSION_GAP_SECONDS)
    start_pos = np.maximum.accumulate(np.where(new, np.arange(len(order)), 0))
    start = np.empty_like(secs)
    start[order] = sorted_secs[start_pos]
    return "tb-" + user + "-" + pd.Series(start, index=user.index).astype(str)


def _latest_category(item: pd.Series, category: pd.Series, seconds: pd.Series) -> pd.DataFrame:
    """One row per item; should the log disagree, the category seen last wins."""
    frame = pd.DataFrame({"item_id": item, "category_id": category, "t": seconds}).sort_values("t", kind="stable")
    items = frame.drop_duplicates("item_id", keep="last")[["item_id", "category_id"]]
    return items.assign(brand_id=None, title=None, list_price=np.nan, cost=np.nan)


# -- UCI Online Retail

RETAIL_COLUMNS: tuple[str, ...] = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
# The file ships as "2010-12-01 08:26:00"; the original spreadsheet export reads "12/1/2010 8:26".
RETAIL_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S")
# Codes that are fees, postage, discounts, manual corrections, samples, bank charges, charity, not products.
NON_MERCHANDISE_CODES = frozenset(
    {"POST", "D", "M", "C2", "DOT", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "S", "B"}
)


def _convert_online_retail(frame: pd.DataFrame, rows: _Rows) -> _Converted:
    """One event per invoice line: purchases and cancellations ("C" invoices) of merchandise.

    Bad (a data error, rejects the file):
      * wrong field count / malformed CSV (reader); empty or 'nan' InvoiceNo / StockCode;
      * InvoiceDate not in a known format; Quantity not an integer; UnitPrice not a number;
      * CustomerID present but not an integer ("17850.0" is fine; 'nan' is an export artefact: blank means guest);
      * negative UnitPrice on merchandise (only bad-debt adjustments, code B, may be negative);
      * a "C" (cancellation) invoice with positive Quantity: the sign contradicts the invoice.
    Ignored (well formed, deliberately not customer merchandise events), checked in this order:
      * non_merchandise_code: POST, DOT, M, C2, D, S, B, ... and any purely alphabetic code of <= 2 letters;
        includes the three "A" invoices (bad-debt adjustments, code B, UnitPrice -11062.06);
      * zero_quantity;
      * stock_adjustment: negative Quantity on a non-"C" invoice (damaged / lost / found stock, always
        UnitPrice 0 and no customer in the real file);
      * warehouse_zero_price: positive Quantity at UnitPrice 0 with no CustomerID: bookkeeping lines
        ("check", "found", "adjustment", blank description), not sales. Zero-price lines *with* a customer
        are free items given to that customer and stay purchases.
    InvoiceDate carries no zone (it is UK local time); it is stored as UTC, as the events schema requires.
    """
    invoice = _text(rows, frame["InvoiceNo"], "InvoiceNo")
    code = _text(rows, frame["StockCode"], "StockCode")
    quantity = _integer(rows, frame["Quantity"], "Quantity", -INT32_MAX, INT32_MAX)
    price = _number(rows, frame["UnitPrice"], "UnitPrice")
    when = _timestamp(rows, frame["InvoiceDate"], "InvoiceDate", RETAIL_DATE_FORMATS)
    customer = _customer_ids(rows, frame["CustomerID"])
    merchandise = ~_non_merchandise(code)
    cancel = invoice.str.upper().str.startswith("C")
    rows.reject(merchandise & (price < 0), "negative UnitPrice {value} on merchandise", frame["UnitPrice"])
    contradiction = cancel & (quantity > 0)
    rows.reject(contradiction, "cancellation invoice (C...) with positive Quantity {value}", frame["Quantity"])

    guest = customer.eq("")
    reasons = {
        "non_merchandise_code": ~merchandise,
        "zero_quantity": quantity.eq(0),
        "stock_adjustment": ~cancel & (quantity < 0),
        "warehouse_zero_price": (quantity > 0) & price.eq(0) & guest,
    }
    keep = pd.Series(rows.good, index=frame.index)
    ignored: dict[str, int] = {}
    for reason, mask in reasons.items():
        hit = keep & mask
        if hit.any():
            ignored[reason] = int(hit.sum())
        keep &= ~hit

    refund = cancel[keep]
    events = _event_frame(
        event_time=when[keep],
        user_key=customer[keep].where(~guest[keep], invoice[keep]),
        user_key_type=np.where(guest[keep], "guest", "member_id"),
        item_id=code[keep],
        event_type=np.where(refund, "refund", "purchase"),
        channel="web",
        store_id=None,
        quantity=quantity[keep].abs(),
        unit_price=price[keep],
        session_id=invoice[keep],
    )
    description = frame["Description"][keep].str.strip().reset_index(drop=True)
    return _Converted(events, items=_retail_items(events, description), prices=_retail_prices(events), ignored=ignored)


def _non_merchandise(code: pd.Series) -> pd.Series:
    upper = code.str.upper()
    return upper.isin(NON_MERCHANDISE_CODES) | upper.str.fullmatch(r"[A-Z]{1,2}")


def _customer_ids(rows: _Rows, values: pd.Series) -> pd.Series:
    """'17850.0' -> '17850'; blank stays blank (a guest)."""
    values = values.str.strip()
    digits = values.str.replace(r"\.0*$", "", regex=True)
    valid = digits.str.fullmatch(r"\d+") | values.eq("")
    rows.reject(~valid, "CustomerID {value} is not an integer (leave it blank for guests)", values)
    return digits.where(valid, "")


def _paid(events: pd.DataFrame) -> pd.DataFrame:
    """Purchases at a real price: free items would drag the price book and list prices to zero."""
    return events[events["event_type"].eq("purchase") & events["unit_price"].gt(0)]


def _retail_items(events: pd.DataFrame, description: pd.Series) -> pd.DataFrame:
    """Title = most frequent description; list price = most frequent paid price (ties: the higher price)."""
    titled = pd.DataFrame({"item_id": events["item_id"], "title": description})
    titled = titled[titled["title"].ne("")]
    titles = _mode(titled, "item_id", "title")
    paid = _paid(events)[["item_id", "unit_price"]]
    prices = _mode(paid, "item_id", "unit_price").rename(columns={"unit_price": "list_price"})
    items = pd.DataFrame({"item_id": events["item_id"].drop_duplicates()})
    items = items.merge(titles, on="item_id", how="left").merge(prices, on="item_id", how="left")
    return items.assign(category_id="unknown", brand_id=None, cost=np.nan)


def _mode(frame: pd.DataFrame, key: str, value: str) -> pd.DataFrame:
    counts = frame.groupby([key, value], sort=False).size().rename("n").reset_index()
    counts = counts.sort_values(["n", value], ascending=False, kind="stable")
    return counts.drop_duplicates(key)[[key, value]]


def _retail_prices(events: pd.DataFrame) -> pd.DataFrame:
    """The day's price book entry = median paid price of that item that day."""
    paid = _paid(events)
    day = paid["event_time"].dt.date.rename("date")
    prices = paid.groupby([paid["item_id"], day])["unit_price"].median().rename("price").reset_index()
    return prices.assign(on_promotion=False)


@dataclass(frozen=True)
class _Spec:
    columns: tuple[str, ...]
    has_header: bool
    convert: Callable[[pd.DataFrame, _Rows], _Converted]


FORMATS: dict[str, _Spec] = {
    "events": _Spec(EVENT_COLUMNS, True, _convert_events),
    "taobao": _Spec(TAOBAO_COLUMNS, False, _convert_taobao),
    "online-retail": _Spec(RETAIL_COLUMNS, True, _convert_online_retail),
}

# --------------------------------------------------------------------------------------------- writing


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_path(settings: Settings) -> Path:
    return settings.data_dir / "imports.json"


def _load_manifest(settings: Settings) -> dict[str, dict[str, Any]]:
    path = _manifest_path(settings)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())["imports"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ImportFormatError(f"import manifest {path} is unreadable ({exc}); fix or remove it") from exc


def _save_manifest(settings: Settings, manifest: dict[str, dict[str, Any]]) -> None:
    """Same rename-into-place rule as the tables."""
    path = _manifest_path(settings)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps({"imports": manifest}, indent=2, sort_keys=True))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _refuse_reimport(settings: Settings, digest: str, name: str) -> None:
    """Refuse content already imported; an entry whose events part never landed (crash) does not count."""
    entry = _load_manifest(settings).get(digest)
    if entry is None:
        return
    part = entry.get("events_part")
    if part is not None and not (settings.events_dir / part).exists():
        return
    raise AlreadyImported(
        f"{name}: this content (sha256 {digest[:12]}) was already imported on {entry['imported_at']} "
        f"from {entry['file']} as {entry['format']} ({entry['events_written']:,} events); nothing was written"
    )


@contextmanager
def _import_lock(settings: Settings) -> Iterator[None]:
    """Serialise writers: two imports upserting items at once would otherwise lose one's rows."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with (settings.data_dir / ".import.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _upsert_items(settings: Settings, new: pd.DataFrame) -> int:
    """New values win, but a null (or the placeholder category 'unknown') never erases a known value."""
    old = read_table(settings.items_path, ITEM_SCHEMA).set_index("item_id")
    new = new[ITEM_SCHEMA.names].drop_duplicates("item_id", keep="last").set_index("item_id")
    new["category_id"] = new["category_id"].replace("unknown", None)
    merged = new.astype(object).combine_first(old.astype(object)) if len(old) else new.astype(object)
    merged["category_id"] = merged["category_id"].fillna("unknown")
    merged = merged.sort_index().reset_index()
    write_table_atomic(to_table(merged, ITEM_SCHEMA), settings.items_path)
    return len(new)


def _upsert_prices(settings: Settings, new: pd.DataFrame) -> int:
    """(item_id, date) is the key; the import's price replaces an existing one for the same day."""
    old = read_table(settings.prices_path, PRICE_SCHEMA)
    frames = [frame for frame in (old, new[PRICE_SCHEMA.names]) if len(frame)]
    merged = pd.concat(frames, ignore_index=True).drop_duplicates(["item_id", "date"], keep="last")
    merged = merged.sort_values(["item_id", "date"], kind="stable")
    write_table_atomic(to_table(merged, PRICE_SCHEMA), settings.prices_path)
    return len(new)


def _write(settings: Settings, converted: _Converted, report: ImportReport, digest: str, fmt: str) -> None:
    """Items, prices, manifest, then the events part: a crash before the events leaves a re-importable file."""
    if converted.items is not None and len(converted.items):
        report.items_upserted = _upsert_items(settings, converted.items)
    if converted.prices is not None and len(converted.prices):
        report.prices_upserted = _upsert_prices(settings, converted.prices)
    part = new_part_path(settings.events_dir, f"import-{fmt}-{digest[:8]}") if len(converted.events) else None
    manifest = _load_manifest(settings)
    manifest[digest] = {
        "file": report.file,
        "format": fmt,
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows_read": report.rows_read,
        "events_written": len(converted.events),
        "bad_rows_skipped": len(report.bad_rows),
        "events_part": part.name if part else None,
    }
    _save_manifest(settings, manifest)
    if part is not None:
        write_table_atomic(to_table(converted.events, EVENT_SCHEMA), part)
        report.events_written = len(converted.events)
        report.events_part = part.name


# --------------------------------------------------------------------------------------------- entry point


def import_file(path: Path, fmt: Format, settings: Settings, skip_bad: bool = False) -> ImportReport:
    """Validate the whole file, then write items, prices and one events part; reject or skip bad rows.

    Raises ImportFormatError for file-level problems (nothing written), AlreadyImported (a subclass) for
    content imported before, and ImportRejected when rows are bad and skip_bad is False (nothing written).
    """
    started = time.perf_counter()
    path = Path(path)
    if fmt not in FORMATS:
        raise ImportFormatError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if not path.is_file():
        raise ImportFormatError(f"{path} does not exist or is not a file")
    digest = _sha256(path)
    _refuse_reimport(settings, digest, path.name)  # before the expensive parse

    spec = FORMATS[fmt]
    raw = _read(path, spec.columns, spec.has_header)
    rows = _Rows(path.name, raw.lines)
    converted = spec.convert(raw.frame, rows)
    report = ImportReport(
        file=str(path),
        format=fmt,
        rows_read=raw.rows_read,
        bad_rows=rows.bad_rows(raw.structural),
        ignored=converted.ignored,
    )
    if report.bad_rows and not skip_bad:
        report.seconds = time.perf_counter() - started
        raise ImportRejected(report)
    with _import_lock(settings):
        _refuse_reimport(settings, digest, path.name)  # another import may have finished meanwhile
        _write(settings, converted, report, digest, fmt)
    report.seconds = time.perf_counter() - started
    return report
