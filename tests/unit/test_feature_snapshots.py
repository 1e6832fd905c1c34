"""Feature snapshots: a snapshot stamped T is computed from events strictly before T."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import NEVER_PURCHASED_DAYS, build_feature_tables
from siyu.data import schema

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def _event(
    day: float, user: str, item: str, kind: str, price: float = 10.0, qty: int = 1, channel: str = "app"
) -> dict:
    return {
        "event_time": T0 + pd.Timedelta(days=day),
        "user_key": user,
        "user_key_type": "device_id",
        "item_id": item,
        "event_type": kind,
        "channel": channel,
        "store_id": None,
        "quantity": qty,
        "unit_price": price,
        "session_id": f"s{day}",
    }


def _tables(rows: list[dict]):
    empty = {
        s: s.empty_table().to_pandas()
        for s in (schema.IDENTITY_MAP_SCHEMA, schema.PRICE_SCHEMA, schema.INVENTORY_SCHEMA)
    }
    items = pd.DataFrame(
        {
            "item_id": ["a", "b"],
            "category_id": ["c1", "c2"],
            "brand_id": None,
            "title": None,
            "list_price": [12.0, 20.0],
            "cost": None,
        }
    )
    return build_feature_tables(
        pd.DataFrame(rows),
        empty[schema.IDENTITY_MAP_SCHEMA],
        items,
        empty[schema.PRICE_SCHEMA],
        empty[schema.INVENTORY_SCHEMA],
    )


def _at(frame: pd.DataFrame, key: str, value: str, day: int) -> pd.Series:
    rows = frame[(frame[key] == value) & (frame["event_timestamp"] == T0 + pd.Timedelta(days=day))]
    assert len(rows) == 1
    return rows.iloc[0]


def test_windows_count_only_events_before_the_snapshot() -> None:
    rows = [
        _event(0.5, "u1", "a", "view"),
        _event(0.6, "u1", "a", "purchase", price=10.0, qty=2),
        _event(3.2, "u1", "b", "purchase", price=20.0),
        _event(9.1, "u1", "a", "view", channel="pos"),
    ]
    tables = _tables(rows)
    user_id = tables.user["user_id"].iloc[0]
    day1 = _at(tables.user, "user_id", user_id, 1)  # midnight after day 0: sees day 0 only
    assert day1["purchases_7d"] == 1 and day1["monetary_7d"] == 20.0 and day1["recency_days"] == 1
    day3 = _at(tables.user, "user_id", user_id, 3)  # the day-3 purchase is not visible yet
    assert day3["purchases_7d"] == 1 and day3["recency_days"] == 3
    day4 = _at(tables.user, "user_id", user_id, 4)
    assert day4["purchases_7d"] == 2 and day4["monetary_7d"] == 40.0 and day4["recency_days"] == 1
    day8 = _at(tables.user, "user_id", user_id, 8)  # day 0 has left the 7-day window
    assert day8["purchases_7d"] == 1 and day8["purchases_30d"] == 2
    assert np.isclose(day8["avg_paid_price_90d"], 40.0 / 3)
    day10 = _at(tables.user, "user_id", user_id, 10)
    assert day10["online_share_30d"] == 0.75
    assert not (tables.user["event_timestamp"] == T0).any(), "no snapshot can exist before any event"


def test_users_without_purchases_get_the_sentinel_recency() -> None:
    tables = _tables([_event(0.2, "u9", "a", "view")])
    assert (tables.user["recency_days"] == NEVER_PURCHASED_DAYS).all()
    assert tables.user["avg_paid_price_90d"].isna().all()


def test_item_snapshots_use_last_seen_price_without_a_price_book() -> None:
    tables = _tables([_event(0.5, "u1", "a", "view", price=11.0), _event(2.5, "u1", "a", "purchase", price=9.0)])
    assert _at(tables.item, "item_id", "a", 1)["price"] == 11.0
    assert _at(tables.item, "item_id", "a", 3)["price"] == 9.0
    assert _at(tables.item, "item_id", "a", 3)["units_7d"] == 1
    assert _at(tables.item, "item_id", "a", 2)["units_7d"] == 0
