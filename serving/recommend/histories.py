"""Each user's counted events at serve time, for the conversion model's history and taste features.

Training reads `history_features` and `taste_traces` over the whole log; serving computes the same
features with `history_at` and `coded_traces_at` over one user's slice of the same log, the candidates all
shown at `now`. The request belongs to the user's latest session while that session is live (its last
event within the session gap of now), and to a new session otherwise, as a real visit would.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pandas as pd

from serving.recommend.index_lookup import position
from training.codes import codes_of
from training.impression_history import COUNTED, HISTORY_FEATURES, UserEvents, history_at
from training.taste_traces import TASTE_FEATURES, coded_traces_at

SESSION_GAP = pd.Timedelta(minutes=30)  # as the importers cut sessions
NEW_SESSION = "__request__"  # the session of a request that continues no live session
BEHAVIOUR_FEATURES = (*HISTORY_FEATURES, *TASTE_FEATURES)  # the column order of `UserHistories.features`
_COLUMNS = ["user_id", "item_id", "session_id", "event_type", "event_time"]


class UserHistories:
    """The log's views, carts and purchases per unified user id, as arrays sliced per request without a scan."""

    def __init__(self, events: pd.DataFrame, item_categories: pd.DataFrame | None = None) -> None:
        """`item_categories` (item_id, category_id) names the category of each event's item, for the taste traces."""
        counted = events.loc[events["event_type"].isin(list(COUNTED)) & events["item_id"].notna(), _COLUMNS]
        if item_categories is not None:
            counted = counted.merge(item_categories[["item_id", "category_id"]], on="item_id", how="left")
        counted = counted.sort_values(["user_id", "event_time"], kind="stable", ignore_index=True)
        codes, users = pd.factorize(counted["user_id"])  # sorted input: codes ascend
        self.users = pd.Index(users)
        self.offsets = np.searchsorted(codes, np.arange(len(users) + 1))
        self.events = UserEvents.of(counted)  # every user's rows, in (user, time) order

    def user_events(self, user_id: str) -> UserEvents:
        row = position(self.users, user_id)
        lo, hi = (self.offsets[row], self.offsets[row + 1]) if row >= 0 else (0, 0)
        return self.events.slice(lo, hi)

    def events_of(self, user_id: str, fresh: pd.DataFrame | None = None) -> UserEvents:
        """The user's counted events, with `fresh` ones (stored since these histories were built) joined in."""
        events = self.user_events(user_id)
        if fresh is not None and len(fresh):
            events = events.joined(UserEvents.of(fresh.sort_values("event_time", kind="stable")))
        return events

    def features(
        self,
        user_id: str,
        items: tuple[np.ndarray, Mapping[str, int]],
        categories: tuple[np.ndarray, Mapping[str, int]],
        now: datetime,
        fresh: pd.DataFrame | None = None,
    ) -> np.ndarray:
        """(number of items, BEHAVIOUR_FEATURES): showing each item to the user at `now`.

        `items`: the items' codes and the coding (item id -> code: the catalogue's rows, `Catalog.row_of`);
        `categories`: the items' category codes and the coding (category id -> code; see `category_codes`).
        `fresh`: the user's events stored since these histories were built (with `category_id`), counted too.
        """
        stamp = pd.Timestamp(now)
        past = self.events_of(user_id, fresh).before(stamp.value)
        session = NEW_SESSION
        if past.time_ns.size and stamp.value - past.time_ns[-1] <= SESSION_GAP.value:
            session = past.session[-1]
        history = history_at(past, items, stamp, session)
        codes, code_of = categories
        traces = coded_traces_at(codes_of(past.category, code_of), past.kind, codes, len(code_of))
        return np.hstack([history, traces])
