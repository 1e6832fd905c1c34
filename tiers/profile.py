"""Each user's four-dimensional profile as of a date: consumption, activity, preference and tenure.

The source material tiers users on RFM plus profile. Every figure reads only events strictly before
`as_of`, so a profile of last month can be a training row for what happened after it, and the
profile of today is what operations act on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOW_DAYS = 90  # consumption window: a quarter covers several purchase cycles of most retail
ACTIVITY_DAYS = 30
PROFILE_COLUMNS = (
    "recency_days",
    "frequency_90d",
    "monetary_90d",
    "aov_90d",
    "purchases_total",
    "sessions_30d",
    "active_days_30d",
    "days_since_visit",
    "tenure_days",
    "top_category_share",
    "online_share",
    "price_paid_vs_list",
)
_DAY = pd.Timedelta(days=1)


def user_profiles(events: pd.DataFrame, items: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """PROFILE_COLUMNS per user with any event before `as_of` (index: user_id).

    `events` carry unified `user_id`s; `items` give each item's category and list price. Users who never
    bought get NaN recency and price figures (no purchase to measure), and zero frequency and spend.
    """
    past = events[events["event_time"] < as_of]
    if past.empty:
        return pd.DataFrame(columns=list(PROFILE_COLUMNS), index=pd.Index([], name="user_id"), dtype=float)
    by_user = past.groupby("user_id")
    out = pd.DataFrame(index=pd.Index(by_user.size().index, name="user_id"))
    days_before = (as_of - past["event_time"]) / _DAY
    out["days_since_visit"] = days_before.groupby(past["user_id"]).min()
    out["tenure_days"] = days_before.groupby(past["user_id"]).max()
    recent = past[days_before < ACTIVITY_DAYS]
    out["sessions_30d"] = recent.groupby("user_id")["session_id"].nunique()
    recent_day = (recent["event_time"] - as_of) // _DAY  # whole days before as_of: one per calendar day
    out["active_days_30d"] = recent_day.groupby(recent["user_id"]).nunique()
    out["online_share"] = (past["channel"] != "pos").groupby(past["user_id"]).mean()
    purchases = past[past["event_type"] == "purchase"].merge(
        items[["item_id", "category_id", "list_price"]], on="item_id", how="left"
    )
    spend = purchases["quantity"] * purchases["unit_price"].fillna(0.0)
    window = ((as_of - purchases["event_time"]) / _DAY) < WINDOW_DAYS
    orders = purchases[window].groupby("user_id")["session_id"].nunique()
    out["recency_days"] = ((as_of - purchases["event_time"]) / _DAY).groupby(purchases["user_id"]).min()
    out["frequency_90d"] = orders
    out["monetary_90d"] = spend[window].groupby(purchases.loc[window, "user_id"]).sum()
    out["aov_90d"] = out["monetary_90d"] / out["frequency_90d"]
    out["purchases_total"] = purchases.groupby("user_id")["session_id"].nunique()
    paid = (purchases["unit_price"] / purchases["list_price"]).where(purchases["list_price"] > 0)
    out["price_paid_vs_list"] = paid.groupby(purchases["user_id"]).mean()
    touched = past[past["item_id"].notna()].merge(items[["item_id", "category_id"]], on="item_id", how="inner")
    shares = touched.groupby(["user_id", "category_id"]).size()
    out["top_category_share"] = shares.groupby(level=0).max() / shares.groupby(level=0).sum()
    counts = ["frequency_90d", "monetary_90d", "purchases_total", "sessions_30d", "active_days_30d"]
    out[counts] = out[counts].fillna(0.0)
    return out[list(PROFILE_COLUMNS)].astype(float)


def visit_gaps(events: pd.DataFrame, as_of: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Days between each user's consecutive visit days before `as_of`, and each gap's weight (1 / the user's
    number of gaps), so a quantile over them describes users rather than visits: heavy visitors would
    otherwise supply most gaps and make "away for long" mean a few days."""
    past = events[events["event_time"] < as_of]
    days = past.assign(day=past["event_time"].dt.floor("D"))[["user_id", "day"]].drop_duplicates()
    days = days.sort_values(["user_id", "day"])
    gaps = days.groupby("user_id")["day"].diff() / _DAY
    has_gap = gaps.notna().to_numpy()
    owner = days["user_id"].to_numpy()[has_gap]
    per_user = pd.Series(owner).map(pd.Series(owner).value_counts()).to_numpy(dtype=float)
    return gaps.to_numpy(dtype=float)[has_gap], 1.0 / per_user
