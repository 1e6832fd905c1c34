"""What an import tells its caller: the report, the located bad row, and the errors that stop an import."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MAX_BAD_IN_MESSAGE = 10


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
