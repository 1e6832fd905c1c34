"""Folding new events into users' online feature rows between materialisations (the push path's arithmetic).

The batch pipeline writes a snapshot per user at each midnight: the row counts the events of the days
before it. An event that arrives through the API would wait for the next build to count; instead the
row the online store holds is updated at once, as a streaming feature pipeline's counters are, and the
updated row is pushed through the view's push source (features/repo.py).

A row is "as of" its timestamp: a snapshot counts the events before it (it is stamped at midnight), a
folded row is stamped with its newest event. Only events at or after that moment are folded, so a
materialisation that already counted an event is not counted over (the API stores, and so pushes, an
event id once; an event older than the row, arriving late, waits for the next build). Counts only
grow here: events leaving a window (the 7th day back for the 7-day counts) drop out at the next
materialisation, which recomputes every row from the log. `online_share_30d` is a
ratio whose denominator the row does not hold, so for a known user it also waits for that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from features.build import NEVER_PURCHASED_DAYS, USER_CATEGORY_FEATURES, USER_FEATURES

AS_OF = "event_timestamp"
PURCHASE_COUNTS = ("purchases_7d", "purchases_30d", "purchases_90d")
SPEND = ("monetary_7d", "monetary_30d", "monetary_90d")
CATEGORY_COUNT = {
    "view": "category_views_30d",
    "add_to_cart": "category_carts_30d",
    "purchase": "category_purchases_30d",
}
ONLINE = "pos"  # the one offline channel: online_share_30d counts the others


def fold_user_rows(rows: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """`rows` (user_id, event_timestamp, USER_FEATURES; NaT/NaN for a user the store does not hold) with
    `events` (user_id, event_time, event_type, quantity, unit_price, channel) counted in, one row per user
    who had an event to fold. Users with nothing new are left out: there is nothing to push for them."""
    held = rows.set_index("user_id")
    folded = []
    for user_id, mine in _by_key(events, ["user_id"]):
        row = held.loc[user_id] if user_id in held.index else None
        as_of = row[AS_OF] if row is not None else pd.NaT
        new = _since(mine, as_of)
        if new.empty:
            continue
        values = _user_start(row, new)
        _count_user_events(values, new, as_of)
        folded.append({"user_id": user_id, AS_OF: new["event_time"].max(), **values})
    return _frame(folded, ["user_id", AS_OF, *USER_FEATURES])


def fold_category_rows(rows: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """`rows` (user_id, category_id, event_timestamp, USER_CATEGORY_FEATURES) with `events` (user_id,
    category_id, event_time, event_type) counted in: views, carts and purchases per user and category."""
    held = rows.set_index(["user_id", "category_id"])
    counted = events[events["event_type"].isin(list(CATEGORY_COUNT)) & events["category_id"].notna()]
    folded = []
    for (user_id, category_id), mine in _by_key(counted, ["user_id", "category_id"]):
        key = (user_id, category_id)
        row = held.loc[key] if key in held.index else None
        as_of = row[AS_OF] if row is not None else pd.NaT
        new = _since(mine, as_of)
        if new.empty:
            continue
        values = {f: _number(row[f]) if row is not None else 0.0 for f in USER_CATEGORY_FEATURES}
        for kind in new["event_type"]:
            values[CATEGORY_COUNT[kind]] += 1.0
        folded.append({"user_id": user_id, "category_id": category_id, AS_OF: new["event_time"].max(), **values})
    return _frame(folded, ["user_id", "category_id", AS_OF, *USER_CATEGORY_FEATURES])


def _by_key(events: pd.DataFrame, keys: list[str]) -> Iterable[tuple[object, pd.DataFrame]]:
    """Each key's events in time order."""
    ordered = events.sort_values("event_time", kind="stable")
    return ordered.groupby(keys if len(keys) > 1 else keys[0], sort=False)


def _since(events: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The events the row does not count yet."""
    return events if pd.isna(as_of) else events[events["event_time"] >= as_of]


def _number(value: object) -> float:
    """A stored feature value as a float (missing -> 0): counts start from nothing."""
    return 0.0 if value is None or pd.isna(value) else float(value)


def _user_start(row: pd.Series | None, new: pd.DataFrame) -> dict[str, float]:
    """The row's values to count from; a user the store does not hold starts as the batch pipeline starts one."""
    if row is not None and not pd.isna(row[AS_OF]):
        return {f: float(row[f]) if not pd.isna(row[f]) else math.nan for f in USER_FEATURES}
    values = dict.fromkeys(USER_FEATURES, 0.0)
    values["recency_days"] = NEVER_PURCHASED_DAYS
    values["avg_paid_price_90d"] = math.nan
    online = (new["channel"] != ONLINE).to_numpy()
    values["online_share_30d"] = float(online.mean())  # every event the new user has is in `new`
    return values


def _count_user_events(values: dict[str, float], new: pd.DataFrame, as_of: pd.Timestamp) -> None:
    """Add `new` (time-ordered) to the counts in place."""
    # The newest day the row counts: a snapshot stamped at midnight counts the day before it.
    last_active = (as_of - pd.Timedelta(microseconds=1)).floor("D") if not pd.isna(as_of) else None
    kinds = new["event_type"].to_numpy()
    quantity = new["quantity"].to_numpy(dtype=float)
    spend = quantity * np.nan_to_num(new["unit_price"].to_numpy(dtype=float))
    for kind, units, paid, day in zip(kinds, quantity, spend, new["event_time"].dt.floor("D"), strict=True):
        if last_active is None or day > last_active:
            values["active_days_30d"] = _number(values["active_days_30d"]) + 1.0
            last_active = day
        if kind == "view":
            values["views_7d"] = _number(values["views_7d"]) + 1.0
            values["views_30d"] = _number(values["views_30d"]) + 1.0
        elif kind == "add_to_cart":
            values["carts_7d"] = _number(values["carts_7d"]) + 1.0
        elif kind == "purchase":
            _count_purchase(values, units, paid)


def _count_purchase(values: dict[str, float], units: float, paid: float) -> None:
    spent_before = _number(values["monetary_90d"])
    average = values["avg_paid_price_90d"]
    # The row keeps the average paid price, not the units behind it: they are spend / average.
    units_before = spent_before / average if average and not math.isnan(average) else _number(values["purchases_90d"])
    for name in PURCHASE_COUNTS:
        values[name] = _number(values[name]) + 1.0
    for name in SPEND:
        values[name] = _number(values[name]) + paid
    if units_before + units > 0:
        values["avg_paid_price_90d"] = (spent_before + paid) / (units_before + units)
    values["recency_days"] = 0.0  # a purchase today: no day since


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    frame[AS_OF] = pd.to_datetime(frame[AS_OF], utc=True)
    return frame
