"""The one entry point, `import_file`: check the file, read, validate, convert, then reject or write."""

from __future__ import annotations

import time
from pathlib import Path

from siyu.data.importing.formats import FORMATS, Format
from siyu.data.importing.reading import read
from siyu.data.importing.report import ImportFormatError, ImportRejected, ImportReport
from siyu.data.importing.validation import Rows
from siyu.data.importing.writing import import_lock, refuse_reimport, sha256, write
from siyu.settings import Settings


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
    digest = sha256(path)
    refuse_reimport(settings, digest, path.name)  # before the expensive parse

    spec = FORMATS[fmt]
    raw = read(path, spec.columns, spec.has_header)
    if raw.frame.empty:  # every record malformed: nothing to convert, so report the records themselves
        report = ImportReport(file=str(path), format=fmt, rows_read=raw.rows_read, bad_rows=raw.structural)
        report.seconds = time.perf_counter() - started
        raise ImportRejected(report)
    rows = Rows(path.name, raw.lines)
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
    with import_lock(settings):
        refuse_reimport(settings, digest, path.name)  # another import may have finished meanwhile
        write(settings, converted, report, digest, fmt)
    report.seconds = time.perf_counter() - started
    return report
