"""Events stored after the log's views were built, held by user until the next rebuild folds them in.

Rebuilding every view of the log takes seconds on a large log, so it happens on the slow refresh
tick; in between, each new part of the event log (an /events batch, an import) is read on its own
as soon as it appears, its events resolved to users, and kept here. A request for a user with fresh
events combines them with the user's stored path and history, so the next recommendation reflects
an event within one poll of its being stored, in every worker process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from serving.recommend.identities import IdentityDirectory
from siyu.data import schema
from siyu.data.store import read_table
from training.live_stock import purchases_of

_NO_PURCHASES = pd.DataFrame({"item_id": [], "event_time": [], "quantity": []})


@dataclass(frozen=True)
class FreshEvents:
    """Immutable: adding returns a new value, so requests read one consistent snapshot without a lock."""

    parts: dict[str, pd.DataFrame] = field(default_factory=dict)  # event-log part file -> its events
    by_user: dict[str, pd.DataFrame] = field(default_factory=dict)  # unified user id -> their fresh events
    # Every part's purchases as (item_id, event_time, quantity): units sold since the stock counts.
    purchases: pd.DataFrame = field(default_factory=lambda: _NO_PURCHASES)

    def adding(self, part: str, events: pd.DataFrame) -> FreshEvents:
        """With one more part's events (each with `user_id`); only the users in it are touched."""
        by_user = dict(self.by_user)
        for user_id, rows in events.groupby("user_id", sort=False):
            before = by_user.get(user_id)
            by_user[user_id] = rows if before is None else pd.concat([before, rows], ignore_index=True)
        bought = purchases_of(events)
        purchases = pd.concat([self.purchases, bought], ignore_index=True) if len(self.purchases) else bought
        return FreshEvents({**self.parts, part: events}, by_user, purchases)

    def keeping(self, parts: set[str]) -> FreshEvents:
        """Only the given parts: the others were folded into a rebuild of the views."""
        kept = FreshEvents()
        for part, events in self.parts.items():
            if part in parts:
                kept = kept.adding(part, events)
        return kept


def read_part(path: Path, identities: IdentityDirectory) -> pd.DataFrame:
    """One part of the event log with each event's unified user id."""
    events = read_table(path, schema.EVENT_SCHEMA)
    return with_user_ids(events, identities)


def with_user_ids(events: pd.DataFrame, identities: IdentityDirectory) -> pd.DataFrame:
    keys = events[["user_key_type", "user_key"]].drop_duplicates()
    resolved = {
        (kind, key): identities.resolve(kind, key).user_id
        for kind, key in zip(keys["user_key_type"], keys["user_key"], strict=True)
    }
    users = [resolved[(kind, key)] for kind, key in zip(events["user_key_type"], events["user_key"], strict=True)]
    return events.assign(user_id=users)
