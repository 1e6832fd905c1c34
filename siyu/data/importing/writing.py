"""Land a validated import: the manifest of imported hashes, the writer lock, item/price upserts, atomic writes."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from siyu.data.importing.converted import Converted
from siyu.data.importing.report import AlreadyImported, ImportFormatError, ImportReport
from siyu.data.schema import EVENT_SCHEMA, ITEM_SCHEMA, PRICE_SCHEMA
from siyu.data.store import new_part_path, read_table, to_table, write_table_atomic
from siyu.settings import Settings


def sha256(path: Path) -> str:
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


def refuse_reimport(settings: Settings, digest: str, name: str) -> None:
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
def import_lock(settings: Settings) -> Iterator[None]:
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
    new = new.reindex(columns=ITEM_SCHEMA.names).drop_duplicates("item_id", keep="last").set_index("item_id")
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


def write(settings: Settings, converted: Converted, report: ImportReport, digest: str, fmt: str) -> None:
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
