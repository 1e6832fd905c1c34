"""Impression history features count exactly the events strictly before each impression."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.impression_history import HISTORY_FEATURES, UserEvents, history_at, history_features

T0 = pd.Timestamp("2026-03-01 10:00", tz="UTC")


def _events(rows: list[tuple[str, str, str, str, float]]) -> pd.DataFrame:
    """(user, item, session, type, minutes after T0) rows as an event frame."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "session_id", "event_type", "minutes"])
    frame["event_time"] = T0 + pd.to_timedelta(frame.pop("minutes"), unit="min")
    return frame


def _impressions(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "session_id", "minutes"])
    frame["event_timestamp"] = T0 + pd.to_timedelta(frame.pop("minutes"), unit="min")
    return frame


EVENTS = _events(
    [
        ("u1", "a", "s1", "view", 0),
        ("u1", "a", "s1", "add_to_cart", 1),
        ("u1", "a", "s1", "purchase", 2),
        ("u1", "b", "s1", "view", 3),
        ("u1", "a", "s2", "view", 2 * 24 * 60),  # two days later, a new session
        ("u1", "a", "s2", "purchase", 2 * 24 * 60 + 5),
        ("u2", "a", "s3", "view", 10),  # another user's events never count for u1
        ("u2", "a", "s3", "add_to_cart", 11),
    ]
)
CODE_OF = {"z": 0, "a": 1, "b": 2}  # serving codes items by catalogue row, in no particular order


def test_counts_only_events_strictly_before_the_impression() -> None:
    impressions = _impressions(
        [
            ("u1", "a", "s1", 0),  # the first view itself: nothing before it
            ("u1", "b", "s1", 3),  # b's own view is at the same instant: not before
            ("u1", "a", "s2", 2 * 24 * 60),  # the second-session view of a
            ("u2", "a", "s3", 10),
        ]
    )
    got = history_features(EVENTS, impressions)
    assert list(got.columns) == list(HISTORY_FEATURES)
    first, second, later, other = (got.iloc[i] for i in range(4))
    assert first[["item_views_before", "item_carts_before", "item_purchases_before"]].tolist() == [0, 0, 0]
    assert np.isnan(first["days_since_item_touch"])
    assert first[["session_views_so_far", "session_minutes_so_far"]].tolist() == [0, 0]
    # At b's view, the session has one view, one cart and one purchase before it (all of item a).
    assert second[["session_views_so_far", "session_carts_so_far", "session_purchases_so_far"]].tolist() == [1, 1, 1]
    assert second["item_views_before"] == 0 and second["session_minutes_so_far"] == pytest.approx(3.0)
    # Two days on, a's history is the earlier session's view, cart and purchase; the new session is empty.
    assert later[["item_views_before", "item_carts_before", "item_purchases_before"]].tolist() == [1, 1, 1]
    assert later["days_since_item_touch"] == pytest.approx(2.0 - 2 / (24 * 60))
    assert later[["session_views_so_far", "session_purchases_so_far"]].tolist() == [0, 0]
    assert got["user_sessions_before"].tolist() == [0, 0, 1, 0]
    assert other["item_views_before"] == 0 and other["item_carts_before"] == 0


def test_dropping_every_later_event_changes_nothing() -> None:
    """Point-in-time: each impression's features are the same when the log ends just before it."""
    impressions = _impressions([("u1", "a", "s2", 2 * 24 * 60), ("u1", "b", "s1", 3), ("u1", "a", "s1", 1.5)])
    full = history_features(EVENTS, impressions)
    for row in range(len(impressions)):
        cut = EVENTS[EVENTS["event_time"] < impressions["event_timestamp"].iloc[row]]
        alone = history_features(cut, impressions.iloc[[row]])
        # The session's start time is read from the log, and the impression's own view is part of it.
        pd.testing.assert_frame_equal(
            alone.drop(columns="session_minutes_so_far"), full.iloc[[row]].drop(columns="session_minutes_so_far")
        )


def test_no_events_gives_zero_counts() -> None:
    impressions = _impressions([("u9", "z", "s9", 0)])
    got = history_features(EVENTS.iloc[:0], impressions)
    assert got["item_views_before"].iloc[0] == 0 and np.isnan(got["days_since_item_touch"].iloc[0])
    assert got["user_sessions_before"].iloc[0] == 0


def test_a_session_not_yet_in_the_log_counts_the_sessions_before_it() -> None:
    """Serving asks about the session in progress, which may have no stored event yet."""
    impressions = _impressions([("u1", "c", "s-new", 3 * 24 * 60), ("u1", "c", "s-early", 1)])
    assert history_features(EVENTS, impressions)["user_sessions_before"].tolist() == [2, 1]


def test_the_serving_form_equals_the_training_form() -> None:
    """history_at (one user, one instant, array counts) gives history_features' rows for the same questions."""
    impressions = _impressions(
        [
            ("u1", "a", "s1", 0),
            ("u1", "b", "s1", 3),
            ("u1", "a", "s1", 2.5),
            ("u1", "a", "s2", 2 * 24 * 60),
            ("u1", "b", "s2", 2 * 24 * 60 + 6),
            ("u1", "z", "s-new", 3 * 24 * 60),  # never touched, in a session with no events yet
            ("u2", "a", "s3", 10.5),
        ]
    )
    trained = history_features(EVENTS, impressions).to_numpy()
    for row, seen in impressions.iterrows():
        own = UserEvents.of(EVENTS[EVENTS["user_id"] == seen["user_id"]])
        past = own.before(seen["event_timestamp"].value)
        coded = (np.array([CODE_OF[seen["item_id"]]]), CODE_OF)
        served = history_at(past, coded, seen["event_timestamp"], seen["session_id"])
        np.testing.assert_allclose(served[0], trained[row], rtol=1e-6, err_msg=f"impression {row}")
