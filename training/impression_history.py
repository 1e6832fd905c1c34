"""What the user had already done before an impression: with this item, and in this session.

The world's purchase probability depends on the user's taste for the item and on the session's intent
stage; the brand sees neither, but it sees their traces. A user who viewed or carted this item before
is likelier to buy it now, and a session that has already carted something is in a buying mood. These
features count the user's events strictly before each impression, so a row never reads its own label
(the view that is the impression, or the purchase that follows it), and serving computes the same counts
from the same event log at request time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.codes import codes_of

# (event type, how the per-item and per-session counts name it)
COUNTED = {"view": "views", "add_to_cart": "carts", "purchase": "purchases"}
ITEM_HISTORY_FEATURES = (
    "item_views_before",
    "item_carts_before",
    "item_purchases_before",
    "days_since_item_touch",
)
SESSION_FEATURES = (
    "user_sessions_before",
    "session_views_so_far",
    "session_carts_so_far",
    "session_purchases_so_far",
    "session_minutes_so_far",
)
HISTORY_FEATURES = (*ITEM_HISTORY_FEATURES, *SESSION_FEATURES)
UNKNOWN_CATEGORY = "unknown"  # the category of an item the catalogue does not list
_NS_PER_DAY = 86_400e9
_NS_PER_MINUTE = 60e9


def history_features(events: pd.DataFrame, impressions: pd.DataFrame) -> pd.DataFrame:
    """HISTORY_FEATURES for each impression (same index).

    `events` has user_id, item_id, session_id, event_type and event_time; `impressions` has user_id,
    item_id, session_id and event_timestamp. An event at the impression's own instant is not "before" it.
    `days_since_item_touch` is NaN for an item the user never touched (LightGBM: missing);
    `session_minutes_so_far` is 0 for a session's first event.
    """
    counted = events[events["event_type"].isin(list(COUNTED)) & events["item_id"].notna()]
    out = pd.DataFrame(index=impressions.index)
    item_counts, last_touch = counts_before(counted, impressions, keys=("user_id", "item_id"), time_of_last=True)
    for kind, name in COUNTED.items():
        out[f"item_{name}_before"] = item_counts[kind]
    ns = impressions["event_timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    out["days_since_item_touch"] = np.where(last_touch > 0, (ns - last_touch) / _NS_PER_DAY, np.nan)
    session_counts, _ = counts_before(counted, impressions, keys=("session_id",), time_of_last=False)
    for kind, name in COUNTED.items():
        out[f"session_{name}_so_far"] = session_counts[kind]
    # Sessions as the counted events see them, so serving (which keeps only those) reads the same starts.
    start = counted.groupby("session_id")["event_time"].min()
    out["user_sessions_before"] = sessions_before(counted, impressions, start)
    began = start.reindex(impressions["session_id"]).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    minutes = np.where(began > 0, (ns - began) / _NS_PER_MINUTE, 0.0)
    out["session_minutes_so_far"] = np.clip(minutes, 0.0, None)
    return out[list(HISTORY_FEATURES)].astype(np.float32)


@dataclass(frozen=True)
class UserEvents:
    """One user's counted events as arrays, oldest first: what `history_at` reads per request."""

    item: np.ndarray  # item ids (object)
    kind: np.ndarray  # event types (object)
    session: np.ndarray  # session ids (object)
    time_ns: np.ndarray  # int64 epoch nanoseconds, ascending
    category: np.ndarray  # the items' category ids (object; "unknown" when the log has none)

    @classmethod
    def of(cls, events: pd.DataFrame) -> UserEvents:
        """From event rows in time order (any types; the uncounted ones are dropped), keeping their order.

        Serving passes every user's rows at once, ordered by (user, time), and slices them per user.
        """
        counted = events[events["event_type"].isin(list(COUNTED)) & events["item_id"].notna()]
        return cls(
            item=counted["item_id"].to_numpy(dtype=object),
            kind=counted["event_type"].to_numpy(dtype=object),
            session=counted["session_id"].to_numpy(dtype=object),
            time_ns=counted["event_time"].to_numpy(dtype="datetime64[ns]").astype(np.int64),
            category=(
                counted["category_id"].fillna(UNKNOWN_CATEGORY).to_numpy(dtype=object)
                if "category_id" in counted
                else np.full(len(counted), UNKNOWN_CATEGORY, dtype=object)
            ),
        )

    def slice(self, start: int, end: int) -> UserEvents:
        return UserEvents(*(array[start:end] for array in self._arrays()))

    def joined(self, newer: UserEvents) -> UserEvents:
        """These events and `newer` in one time order (a stable sort: equal instants keep this-then-newer)."""
        order = np.argsort(np.concatenate([self.time_ns, newer.time_ns]), kind="stable")
        return UserEvents(
            *(
                np.concatenate([mine, theirs])[order]
                for mine, theirs in zip(self._arrays(), newer._arrays(), strict=True)
            )
        )

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self.item, self.kind, self.session, self.time_ns, self.category

    def before(self, now_ns: int) -> UserEvents:
        return self.slice(0, int(np.searchsorted(self.time_ns, now_ns, side="left")))


def history_at(
    past: UserEvents, items: tuple[np.ndarray, Mapping[str, int]], now: pd.Timestamp, session_id: object
) -> np.ndarray:
    """(len(item codes), HISTORY_FEATURES) float32: showing each item to one user at `now` in `session_id`.

    The serving form of `history_features`: `past` is that user's events before `now`, and every candidate
    shares one instant and one session, so per-item counts over a few hundred events replace the sort over
    the whole log. `items` is the candidates' codes and the coding they come from (item id -> code: the
    catalogue's rows), so only the user's few hundred past items are looked up, never the ~1,000
    candidates; a past item outside the coding is never a candidate. Tests hold the two forms equal on
    logged impressions.
    """
    item_codes, code_of = items
    n, size = len(item_codes), max(len(code_of), 1)
    codes = codes_of(past.item, code_of)
    listed = codes >= 0
    candidate = np.maximum(item_codes, 0)
    touched = np.zeros(size, dtype=bool)
    touched[codes[listed]] = True
    known = touched[candidate] & (item_codes >= 0)
    in_session = past.session == session_id
    out: dict[str, np.ndarray] = {}
    for event_type, name in COUNTED.items():
        of_type = past.kind == event_type
        per_item = np.bincount(codes[listed & of_type], minlength=size)
        out[f"item_{name}_before"] = np.where(known, per_item[candidate], 0)
        out[f"session_{name}_so_far"] = np.full(n, np.count_nonzero(in_session & of_type))
    latest = np.zeros(size, dtype=np.int64)
    np.maximum.at(latest, codes[listed], past.time_ns[listed])
    now_ns = pd.Timestamp(now).value
    out["days_since_item_touch"] = np.where(known, (now_ns - latest[candidate]) / _NS_PER_DAY, np.nan)
    began = past.time_ns[in_session].min() if in_session.any() else now_ns
    out["session_minutes_so_far"] = np.full(n, (now_ns - began) / _NS_PER_MINUTE)
    out["user_sessions_before"] = np.full(n, len(set(past.session[past.time_ns < began].tolist())))
    return np.column_stack([out[name] for name in HISTORY_FEATURES]).astype(np.float32)


def sessions_before(events: pd.DataFrame, impressions: pd.DataFrame, start: pd.Series | None = None) -> np.ndarray:
    """How many of the user's sessions began before each impression's session (its history depth).

    A session with no event in `events` (the visit in progress at serve time) counts the user's sessions
    begun before the impression. `start` is each session's first event time, when the caller has it already.
    """
    if start is None:
        start = events.groupby("session_id")["event_time"].min()
    owner = events.drop_duplicates("session_id").set_index("session_id")["user_id"].reindex(start.index)
    began = start.reindex(impressions["session_id"]).to_numpy(dtype="datetime64[ns]")
    # The moment that orders the impression's session among the user's: its start, or the impression itself.
    moment = np.where(np.isnat(began), impressions["event_timestamp"].to_numpy(dtype="datetime64[ns]"), began)
    users = pd.Index(pd.unique(np.r_[owner.to_numpy(dtype=object), impressions["user_id"].to_numpy(dtype=object)]))
    times, ranked = np.unique(np.r_[start.to_numpy(dtype="datetime64[ns]"), moment], return_inverse=True)
    stride = times.size + 1
    session_key = np.sort(users.get_indexer(owner.to_numpy()) * stride + ranked[: start.size])
    query_key = users.get_indexer(impressions["user_id"].to_numpy()) * stride + ranked[start.size :]
    user_floor = users.get_indexer(impressions["user_id"].to_numpy()) * stride
    earlier = np.searchsorted(session_key, query_key, side="left") - np.searchsorted(session_key, user_floor)
    return earlier.astype(np.float32)


def counts_before(
    events: pd.DataFrame,
    impressions: pd.DataFrame,
    keys: tuple[str, ...],
    time_of_last: bool,
    kinds: tuple[str, ...] = tuple(COUNTED),
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per impression, how many events of each of `kinds` share its `keys` and happened strictly before it,
    and (when asked) the time in ns of the latest such event (0 when none).

    One sort of events and impressions together by (keys, time), impressions first among equal times, and
    running sums per key: the value at an impression's row counts exactly the events before it.
    """
    n_events = len(events)
    both = pd.concat(
        [
            events[[*keys, "event_time", "event_type"]].rename(columns={"event_time": "t"}),
            impressions[list(keys)].assign(t=impressions["event_timestamp"], event_type=None),
        ],
        ignore_index=True,
    )
    is_impression = np.r_[np.zeros(n_events, dtype=bool), np.ones(len(impressions), dtype=bool)]
    group = both.groupby(list(keys), sort=False, dropna=False).ngroup().to_numpy()
    t = both["t"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    order = np.lexsort((~is_impression, t, group))  # impressions before events at the same instant
    is_impression, kind = is_impression[order], both["event_type"].to_numpy()[order]
    sorted_group = pd.Series(group[order])
    counts: dict[str, np.ndarray] = {}
    position = np.empty(len(impressions), dtype=np.int64)
    position[order[is_impression] - n_events] = np.flatnonzero(is_impression)
    for name in kinds:
        running = pd.Series(kind == name, dtype=np.int64).groupby(sorted_group).cumsum().to_numpy()
        counts[name] = running[position].astype(np.float32)
    last = np.zeros(len(impressions), dtype=np.int64)
    if time_of_last:
        stamp = pd.Series(np.where(is_impression, 0, t[order]))
        last = stamp.groupby(sorted_group).cummax().to_numpy()[position]
    return counts, last
