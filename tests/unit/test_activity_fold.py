"""Folding a day's events into the online rows gives what the batch build's next snapshot holds.

Within a week no event leaves any window at the next midnight, so there the fold must agree with the
batch pipeline exactly: same counts, spend, active days and average paid price (recency is "today"
after a purchase, where the next snapshot says "one day ago").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features.activity import fold_category_rows, fold_user_rows
from features.build import USER_CATEGORY_FEATURES, USER_FEATURES
from siyu.data.identity import attach_user_ids
from tests.unit.test_feature_snapshots import T0, _tables

LAST_DAY = 6  # events on days 0..6: the snapshot after day 6 drops nothing from any window
ITEM_CATEGORY = {"a": "c1", "b": "c2"}

events_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "day": st.integers(0, LAST_DAY),
            "second": st.integers(0, 86_399),
            "user": st.sampled_from(["u1", "u2", "u3"]),
            "item": st.sampled_from(["a", "b"]),
            "kind": st.sampled_from(["view", "add_to_cart", "purchase", "favourite", "search"]),
            "qty": st.integers(1, 3),
            "price": st.floats(0.5, 100.0),
            "channel": st.sampled_from(["app", "pos", "mini_program"]),
        }
    ),
    min_size=1,
    max_size=40,
)


def _frame(drawn: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_time": [T0 + pd.Timedelta(days=e["day"], seconds=e["second"]) for e in drawn],
            "user_key": [e["user"] for e in drawn],
            "user_key_type": "device_id",
            "item_id": [e["item"] for e in drawn],
            "event_type": [e["kind"] for e in drawn],
            "channel": [e["channel"] for e in drawn],
            "store_id": None,
            "quantity": [e["qty"] for e in drawn],
            "unit_price": [e["price"] for e in drawn],
            "session_id": "s",
        }
    )


def _snapshot(frame: pd.DataFrame, key: list[str], day: int) -> pd.DataFrame:
    """The rows in force at midnight `day` (the newest row stamped at or before it, per key)."""
    stamp = T0 + pd.Timedelta(days=day)
    held = frame[frame["event_timestamp"] <= stamp].sort_values("event_timestamp")
    return held.groupby(key, as_index=False).tail(1).reset_index(drop=True)


@settings(max_examples=60, deadline=None)
@given(events_strategy)
def test_folding_the_last_day_gives_the_next_snapshot(drawn: list[dict]) -> None:
    events = _frame(drawn)
    tables = _tables(drawn_rows := events.to_dict("records"))
    assert drawn_rows
    with_users = attach_user_ids(events, pd.DataFrame(columns=["user_key_type", "user_key", "user_id"]))
    last_day = with_users[with_users["event_time"] >= T0 + pd.Timedelta(days=LAST_DAY)]
    before = _snapshot(tables.user, ["user_id"], LAST_DAY)
    after = _snapshot(tables.user, ["user_id"], LAST_DAY + 1).set_index("user_id")

    folded = fold_user_rows(before, last_day).set_index("user_id")

    assert set(folded.index) == set(last_day["user_id"])
    for user_id, row in folded.iterrows():
        expected = after.loc[user_id]
        known_before = user_id in set(before["user_id"])
        for feature in USER_FEATURES:
            if feature == "recency_days":
                bought = (last_day[last_day["user_id"] == user_id]["event_type"] == "purchase").any()
                held = before.set_index("user_id").at[user_id, feature] if known_before else 365.0
                assert row[feature] == (0.0 if bought else held)
            elif feature == "online_share_30d" and known_before:
                assert row[feature] == before.set_index("user_id").at[user_id, feature]  # waits for the build
            else:
                _close(row[feature], expected[feature], feature)
        assert row["event_timestamp"] == last_day[last_day["user_id"] == user_id]["event_time"].max()


@settings(max_examples=60, deadline=None)
@given(events_strategy)
def test_folding_category_engagement_gives_the_next_step(drawn: list[dict]) -> None:
    events = _frame(drawn)
    tables = _tables(events.to_dict("records"))
    with_users = attach_user_ids(events, pd.DataFrame(columns=["user_key_type", "user_key", "user_id"]))
    with_users["category_id"] = with_users["item_id"].map(ITEM_CATEGORY)
    last_day = with_users[with_users["event_time"] >= T0 + pd.Timedelta(days=LAST_DAY)]
    keys = ["user_id", "category_id"]
    before = _snapshot(tables.user_category, keys, LAST_DAY)
    after = _snapshot(tables.user_category, keys, LAST_DAY + 1).set_index(keys)

    folded = fold_category_rows(before, last_day).set_index(keys)

    engaged = last_day[last_day["event_type"].isin(["view", "add_to_cart", "purchase"])]
    assert set(folded.index) == set(zip(engaged["user_id"], engaged["category_id"], strict=True))
    for key, row in folded.iterrows():
        for feature in USER_CATEGORY_FEATURES:
            _close(row[feature], after.loc[key, feature], feature)


def test_events_a_row_already_counts_are_not_counted_again() -> None:
    """A materialisation that ran after the events were stored has them; folding them again adds nothing."""
    at = T0 + pd.Timedelta(hours=10)
    row = pd.DataFrame([{"user_id": "u1", "event_timestamp": at, **dict.fromkeys(USER_FEATURES, 1.0)}])
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1"],
            "event_time": [at - pd.Timedelta(hours=1), at + pd.Timedelta(minutes=5)],
            "event_type": ["view", "view"],
            "quantity": [1, 1],
            "unit_price": [1.0, 1.0],
            "channel": ["app", "app"],
        }
    )

    folded = fold_user_rows(row, events).iloc[0]

    assert folded["views_7d"] == 2.0  # only the event after the row's time
    assert folded["active_days_30d"] == 1.0  # the row already counts that day
    assert fold_user_rows(row, events.iloc[:1]).empty  # nothing new: nothing to push


def _close(got: float, expected: float, name: str) -> None:
    assert np.isclose(got, expected, rtol=1e-5, equal_nan=True), (name, got, expected)
