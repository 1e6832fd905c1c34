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

import numpy as np
import pandas as pd

from features.build import NEVER_PURCHASED_DAYS, USER_CATEGORY_FEATURES, USER_FEATURES

AS_OF = "event_timestamp"
OFFLINE = "pos"  # the one offline channel: online_share_30d counts the others
CATEGORY_COUNT = {
    "view": "category_views_30d",
    "add_to_cart": "category_carts_30d",
    "purchase": "category_purchases_30d",
}
# user feature -> the per-user sum of new events it grows by
USER_SUMS = {
    "views_7d": "views",
    "views_30d": "views",
    "carts_7d": "carts",
    "purchases_7d": "purchases",
    "purchases_30d": "purchases",
    "purchases_90d": "purchases",
    "monetary_7d": "spend",
    "monetary_30d": "spend",
    "monetary_90d": "spend",
    "active_days_30d": "new_days",
}


def fold_user_rows(rows: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """`rows` (user_id, event_timestamp, USER_FEATURES; a user the store does not hold has no row) with
    `events` (user_id, event_time, event_type, quantity, unit_price, channel) counted in, one row per user
    who had an event to fold. Users with nothing new are left out: there is nothing to push for them."""
    held = rows.drop_duplicates("user_id").set_index("user_id")
    new = _since(events, held[AS_OF], ["user_id"])
    if new.empty:
        return pd.DataFrame(columns=["user_id", AS_OF, *USER_FEATURES])
    kind = new["event_type"].to_numpy()
    purchase = kind == "purchase"
    quantity = new["quantity"].to_numpy(dtype=float)
    day = new["event_time"].dt.floor("D")
    # The newest day the row counts: a snapshot stamped at midnight counts the day before it.
    last_active = (new["_as_of"] - pd.Timedelta(microseconds=1)).dt.floor("D")
    first_of_day = ~pd.DataFrame({"user_id": new["user_id"], "day": day}).duplicated().to_numpy()
    parts = pd.DataFrame(
        {
            "user_id": new["user_id"].to_numpy(),
            "views": kind == "view",
            "carts": kind == "add_to_cart",
            "purchases": purchase,
            "spend": np.where(purchase, quantity * np.nan_to_num(new["unit_price"].to_numpy(dtype=float)), 0.0),
            "units": np.where(purchase, quantity, 0.0),
            "new_days": first_of_day & (last_active.isna() | (day > last_active)).to_numpy(),
            "online": (new["channel"] != OFFLINE).to_numpy(),
            AS_OF: new["event_time"].to_numpy(),
        }
    )
    grouped = parts.groupby("user_id", sort=False)
    sums = grouped[["views", "carts", "purchases", "spend", "units", "new_days"]].sum().astype(float)
    start = _user_start(held, sums.index, grouped["online"].mean())
    out = start.copy()
    for feature, column in USER_SUMS.items():
        out[feature] = start[feature].fillna(0.0) + sums[column]
    # The row keeps the average paid price, not the units behind it: they are spend / average.
    average, spent = start["avg_paid_price_90d"], start["monetary_90d"].fillna(0.0)
    units = np.where(average > 0, spent / average, start["purchases_90d"].fillna(0.0)) + sums["units"]
    paid = spent + sums["spend"]
    out["avg_paid_price_90d"] = np.where(units > 0, paid / units.where(units > 0, 1.0), average)
    out["recency_days"] = np.where(sums["purchases"] > 0, 0.0, start["recency_days"])  # a purchase today: no day since
    out[AS_OF] = grouped[AS_OF].max()
    return out.rename_axis("user_id").reset_index()[["user_id", AS_OF, *USER_FEATURES]]


def fold_category_rows(rows: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """`rows` (user_id, category_id, event_timestamp, USER_CATEGORY_FEATURES) with `events` (user_id,
    category_id, event_time, event_type) counted in: views, carts and purchases per user and category."""
    keys = ["user_id", "category_id"]
    counted = events[events["event_type"].isin(list(CATEGORY_COUNT)) & events["category_id"].notna()]
    held = rows.drop_duplicates(keys).set_index(keys)
    new = _since(counted, held[AS_OF], keys)
    if new.empty:
        return pd.DataFrame(columns=[*keys, AS_OF, *USER_CATEGORY_FEATURES])
    parts = pd.DataFrame({name: (new["event_type"] == kind).to_numpy() for kind, name in CATEGORY_COUNT.items()})
    parts[keys] = new[keys].to_numpy()
    parts[AS_OF] = new["event_time"].to_numpy()
    grouped = parts.groupby(keys, sort=False)
    out = grouped[list(USER_CATEGORY_FEATURES)].sum().astype(float)
    before = held.reindex(out.index)[list(USER_CATEGORY_FEATURES)].astype(float).fillna(0.0)
    out = out + before
    out[AS_OF] = grouped[AS_OF].max()
    return out.reset_index()[[*keys, AS_OF, *USER_CATEGORY_FEATURES]]


def _since(events: pd.DataFrame, as_of: pd.Series, keys: list[str]) -> pd.DataFrame:
    """The events each row does not count yet (at or after its timestamp; all of a key without a row), with
    the row's timestamp as `_as_of`, in time order."""
    index = pd.MultiIndex.from_frame(events[keys]) if len(keys) > 1 else pd.Index(events[keys[0]])
    stamped = events.assign(_as_of=as_of.reindex(index).to_numpy())
    stamped["_as_of"] = pd.to_datetime(stamped["_as_of"], utc=True)
    kept = stamped["_as_of"].isna() | (stamped["event_time"] >= stamped["_as_of"])
    return stamped[kept.to_numpy()].sort_values("event_time", kind="stable")


def _user_start(held: pd.DataFrame, users: pd.Index, online_share: pd.Series) -> pd.DataFrame:
    """The rows to count from; a user the store does not hold starts as the batch pipeline starts one."""
    start = held.reindex(users)[list(USER_FEATURES)].astype(float)
    stranger = ~users.isin(held.index)
    start.loc[stranger, list(USER_FEATURES)] = 0.0
    start.loc[stranger, "recency_days"] = NEVER_PURCHASED_DAYS
    start.loc[stranger, "avg_paid_price_90d"] = np.nan
    start.loc[stranger, "online_share_30d"] = online_share[stranger].to_numpy()  # all the new user's events
    return start
