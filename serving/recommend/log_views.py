"""Everything serving derives from the stored event log, read once per change and swapped in as one.

Users' decision paths, their per-item histories, the item-to-item neighbour lists and the identity
directory are all views of the same files (the event parts and the identity map). They are built
together from one read, so a request never pairs one version's paths with another's identities,
and the log is not read once per view on every refresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features.repo import item_meta_path
from serving.recommend.histories import UserHistories
from serving.recommend.identities import IdentityDirectory
from serving.recommend.index_lookup import position
from serving.recommend.paths import DecisionPaths
from serving.recommend.related import RelatedItems
from serving.recommend.repurchase import RepurchaseCycles
from siyu.data import schema
from siyu.data.store import read_parts, read_table, table_parts
from siyu.settings import Settings
from training.live_stock import purchases_of
from training.sequence.data import SequenceData, SequenceDataError
from training.sequence.recommender import SASRecRecommender
from training.sequence.sources import from_event_log, item_categories, step_events, unified_users

LogVersion = tuple[tuple[str, int, int], ...]


def event_parts(settings: Settings) -> list[Path]:
    return table_parts(settings.events_dir)


def log_version(settings: Settings, parts: list[Path] | None = None) -> LogVersion:
    """(name, size, modification time) of every file the views are built from: equal tuples, equal views.

    Raises OSError when a file vanishes while it is read, as a log rewrite may make it.
    """
    files = [*(event_parts(settings) if parts is None else parts), settings.identity_map_path]
    stats = [(f.name, f.stat()) for f in files if f.exists()]
    return tuple((name, stat.st_size, stat.st_mtime_ns) for name, stat in stats)


RECENT_STEP_EVENTS = 400  # per user: enough for the model's longest path and co-occurrence's history
_STEP_COLUMNS = ["user_id", "item_id", "session_id", "event_time", "event_type", "channel"]
STEP_TIME = "datetime64[ns, UTC]"  # one time unit for stored and fresh step events


@dataclass(frozen=True)
class RecentSteps:
    """Each user's newest step events, raw: a fresh event's path is rebuilt from these plus the new ones."""

    events: pd.DataFrame  # _STEP_COLUMNS, ordered by (user, time), event_time in STEP_TIME
    users: pd.Index
    offsets: np.ndarray

    @classmethod
    def of(cls, steps: pd.DataFrame) -> RecentSteps:
        ordered = steps[_STEP_COLUMNS].sort_values(["user_id", "event_time"], kind="stable")
        ordered = ordered.groupby("user_id", sort=False).tail(RECENT_STEP_EVENTS).reset_index(drop=True)
        ordered = ordered.astype({"event_time": STEP_TIME})  # the unit fresh events are held in (Ranker.add_fresh)
        codes, users = pd.factorize(ordered["user_id"])
        return cls(ordered, pd.Index(users), np.searchsorted(codes, np.arange(len(users) + 1)))

    def path_with(self, user_id: str, fresh: pd.DataFrame) -> SequenceData | None:
        """The user's path through their stored and fresh step events (None when neither has a step).

        Both sides hold their times in STEP_TIME: the log reads back in microseconds, an /events batch may
        arrive in nanoseconds, and mixed units concatenate to objects, which no path can be built from.
        """
        row = position(self.users, user_id)
        stored = self.events.iloc[self.offsets[row] : self.offsets[row + 1]] if row >= 0 else self.events.iloc[:0]
        events = pd.concat([stored, fresh[_STEP_COLUMNS]], ignore_index=True).sort_values("event_time", kind="stable")
        events = events.tail(RECENT_STEP_EVENTS)
        try:
            return from_event_log(events, events["user_id"].to_numpy(), None)
        except SequenceDataError:
            return None


@dataclass(frozen=True)
class LogViews:
    paths: DecisionPaths
    histories: UserHistories
    related: RelatedItems
    identities: IdentityDirectory
    recent: RecentSteps
    cycles: RepurchaseCycles
    sales: pd.DataFrame  # the log's purchases (item_id, event_time, quantity): units sold since a stock count
    version: LogVersion
    built_at: str  # UTC, to the second: names this build in responses

    @classmethod
    def build(
        cls,
        settings: Settings,
        model: SASRecRecommender | None = None,
        model_version: str | None = None,
        previous: LogViews | None = None,
    ) -> LogViews:
        """Read the log once and build every view (raises SequenceDataError when it holds no steps); paths
        unchanged since `previous` keep their encodings."""
        parts = event_parts(settings)
        version = log_version(settings, parts)
        try:
            events = read_parts(parts, schema.EVENT_SCHEMA)  # exactly these: a later part is a fresh event
            identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
        except (pa.ArrowException, OSError) as exc:
            raise SequenceDataError(f"cannot read the event log under {settings.data_dir}: {exc}") from exc
        if events.empty:
            raise SequenceDataError(f"no events under {settings.events_dir} yet")
        users = unified_users(events, identity)
        data = from_event_log(events, users, item_categories(settings), settings.events_dir)
        with_users = events.assign(user_id=users)
        steps = step_events(with_users)
        meta = item_meta_path(settings)
        return cls(
            paths=DecisionPaths(data, model, model_version, previous=previous.paths if previous else None),
            histories=UserHistories(with_users, pd.read_parquet(meta) if meta.exists() else None),
            related=RelatedItems(steps),
            identities=IdentityDirectory(identity),
            recent=RecentSteps.of(steps),
            cycles=RepurchaseCycles.of(steps[steps["event_type"] == "purchase"]),
            sales=purchases_of(events),
            version=version,
            built_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
