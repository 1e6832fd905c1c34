"""Events that arrive one batch at a time (the /events endpoint): checked per event, stored once, stored first.

Each event is checked by the same rules as an imported events file (`convert_events`), plus one an
import cannot need: a timestamp in the future (beyond a little clock skew) is refused. Bad events are
refused one by one with their reasons; the good ones of the same batch are stored. Storing means an
atomic Parquet part in the event log, written before the caller is answered, so an acknowledged
event is never lost. An `event_id` ledger (SQLite, shared by every worker process) makes a retried
batch count once: ids are recorded in the same transaction that writes the part, which holds the
ledger's write lock, so two workers never store the same id twice. A crash between the part's rename
and the ledger's commit can store a batch twice when it is retried (at-least-once, never lost).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from siyu.data.importing.events import EVENT_COLUMNS, convert_events
from siyu.data.importing.validation import Rows
from siyu.data.schema import EVENT_SCHEMA
from siyu.data.store import new_part_path, to_table, write_table_atomic
from siyu.settings import Settings

MAX_CLOCK_SKEW = timedelta(minutes=5)  # a device clock this far ahead is still believed


@dataclass
class RefusedEvent:
    index: int  # position in the batch
    event_id: str
    reasons: list[str]


@dataclass
class Ingested:
    stored: pd.DataFrame  # the events written now, in EVENT_SCHEMA
    duplicates: list[str] = field(default_factory=list)  # event ids stored before (or twice in the batch)
    refused: list[RefusedEvent] = field(default_factory=list)
    part: str | None = None  # the event-log part they went to


def ledger_path(settings: Settings) -> Path:
    return settings.data_dir / "event_ids.sqlite"


@contextmanager
def _ledger(settings: Settings) -> Iterator[sqlite3.Connection]:
    """The event-id ledger, inside one write transaction (BEGIN IMMEDIATE: one writer at a time)."""
    path = ledger_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS event_ids (event_id TEXT PRIMARY KEY, part TEXT NOT NULL)")
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _already_stored(db: sqlite3.Connection, event_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for lo in range(0, len(event_ids), 500):  # SQLite's bound-parameter limit
        chunk = event_ids[lo : lo + 500]
        marks = ",".join("?" * len(chunk))
        found |= {row[0] for row in db.execute(f"SELECT event_id FROM event_ids WHERE event_id IN ({marks})", chunk)}
    return found


def _as_text(events: list[dict]) -> pd.DataFrame:
    """The batch as the importer's text columns ("" for missing), so one set of rules checks both."""
    cells = {col: ["" if e.get(col) is None else str(e[col]) for e in events] for col in EVENT_COLUMNS}
    return pd.DataFrame(cells, dtype=object).astype(pd.StringDtype("pyarrow"))


def ingest_events(settings: Settings, events: list[dict], event_ids: list[str], now: datetime) -> Ingested:
    """Check every event, then store the good, new ones as one part of the event log (see the module doc)."""
    frame = _as_text(events)
    rows = Rows("batch", np.arange(len(events)))
    when = pd.to_datetime(frame["event_time"].astype(object), utc=True, errors="coerce", format="ISO8601")
    rows.reject(
        (when > pd.Timestamp(now) + MAX_CLOCK_SKEW).to_numpy(),
        "event_time {value} is in the future",
        frame["event_time"],
    )
    converted = convert_events(frame, rows).events
    good = np.flatnonzero(rows.good)
    refused = [RefusedEvent(pos, event_ids[pos], why) for pos, why in rows.reasons().items()]
    first_in_batch = ~pd.Series(event_ids).iloc[good].duplicated().to_numpy()
    with _ledger(settings) as db:
        ids = [event_ids[i] for i in good]
        stored_before = _already_stored(db, ids)
        fresh = first_in_batch & np.asarray([i not in stored_before for i in ids], dtype=bool)
        duplicates = [i for i, keep in zip(ids, fresh, strict=True) if not keep]
        new = converted[fresh].reset_index(drop=True)
        if new.empty:
            return Ingested(new, duplicates, refused)
        part = new_part_path(settings.events_dir, "api")
        write_table_atomic(to_table(new, EVENT_SCHEMA), part)
        db.executemany(
            "INSERT INTO event_ids (event_id, part) VALUES (?, ?)",
            [(i, part.name) for i, keep in zip(ids, fresh, strict=True) if keep],
        )
    return Ingested(new, duplicates, refused, part.name)
