"""Column validators shared by every format: parse text cells and record every reason a row is bad."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from siyu.data.importing.report import BadRow

# Values that spreadsheet / pandas exports write for a missing cell; as an identifier they are never real.
MISSING_TOKENS = frozenset({"nan", "none", "null", "nat"})
INT32_MAX = 2**31 - 1


class Rows:
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

    def reasons(self) -> dict[int, list[str]]:
        """Every bad row's reasons, by position in the frame."""
        return {pos: list(why) for pos, why in sorted(self._reasons.items())}

    def bad_rows(self, structural: list[BadRow]) -> list[BadRow]:
        found = [BadRow(self.file, int(self.lines[pos]), "; ".join(why)) for pos, why in self._reasons.items()]
        return sorted(structural + found, key=lambda row: row.line)


def _show(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def text(rows: Rows, values: pd.Series, col: str, required: bool = True, digits: bool = False) -> pd.Series:
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


def number(rows: Rows, values: pd.Series, col: str, required: bool = True) -> pd.Series:
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


def integer(rows: Rows, values: pd.Series, col: str, low: int, high: int) -> pd.Series:
    """Whole numbers within [low, high]; returns float64 with NaN where bad (int conversion is left to callers)."""
    parsed = number(rows, values, col)
    whole = parsed.notna() & parsed.eq(np.floor(parsed))
    rows.reject(parsed.notna() & ~whole, f"{col} {{value}} is not an integer", values)
    rows.reject(whole & ~parsed.between(low, high), f"{col} {{value}} is out of range [{low}, {high}]", values)
    return parsed.where(whole & parsed.between(low, high))


_HAS_OFFSET = r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


def timestamp(rows: Rows, values: pd.Series, col: str, formats: tuple[str, ...]) -> pd.Series:
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


def choice(rows: Rows, values: pd.Series, col: str, allowed: tuple[str, ...] | dict[str, str]) -> pd.Series:
    values = values.str.strip()
    rows.reject(~values.isin(list(allowed)), f"{col} {{value}} is not one of {', '.join(allowed)}", values)
    return values
