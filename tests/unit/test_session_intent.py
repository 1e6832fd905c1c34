"""Purchase intent as a point-in-time impression feature: it reads the past only, and the past moves it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from siyu.data import schema
from siyu.data.identity import attach_user_ids
from siyu.data.store import read_table
from training.dataset import labelled_impressions
from training.sequence.data import leave_last_out
from training.sequence.model import SequenceModelConfig
from training.sequence.recommender import SASRecRecommender
from training.sequence.session_intent import session_intent
from training.sequence.sources import own_events


@pytest.fixture(scope="module")
def fitted(small_world) -> tuple[SASRecRecommender, pd.DataFrame, pd.DataFrame]:
    recommender = SASRecRecommender(SequenceModelConfig(hidden=16, heads=1, budget_seconds=3, threads=1, max_epochs=3))
    recommender.fit(leave_last_out(own_events(small_world)))
    events = attach_user_ids(
        read_table(small_world.events_dir, schema.EVENT_SCHEMA),
        read_table(small_world.identity_map_path, schema.IDENTITY_MAP_SCHEMA),
    )
    impressions = labelled_impressions(events).sort_values("event_timestamp", ignore_index=True)
    return recommender, events, impressions


def _mid_session(events: pd.DataFrame, impressions: pd.DataFrame) -> int:
    """An impression late in the log whose session already had an earlier event."""
    first = events.groupby("session_id")["event_time"].min()
    later = impressions["event_timestamp"].to_numpy() > first.reindex(impressions["session_id"]).to_numpy()
    return int(np.flatnonzero(later)[-1])


def test_intent_is_a_probability_per_impression_and_varies(fitted) -> None:
    recommender, events, impressions = fitted
    intent = session_intent(recommender, events, impressions)
    assert intent.shape == (len(impressions),)
    assert ((intent > 0) & (intent < 1)).all() and np.unique(intent).size > len(intent) // 4


def test_nothing_at_or_after_the_impression_is_read(fitted) -> None:
    recommender, events, impressions = fitted
    k = _mid_session(events, impressions)
    one = impressions.iloc[[k]]
    before = events[events["event_time"] < one["event_timestamp"].iat[0]]
    assert len(before) < len(events)
    assert session_intent(recommender, before, one)[0] == session_intent(recommender, events, one)[0]


def test_the_session_so_far_moves_the_intent(fitted) -> None:
    recommender, events, impressions = fitted
    k = _mid_session(events, impressions)
    one = impressions.iloc[[k]]
    without_session = events[events["session_id"] != one["session_id"].iat[0]]
    assert session_intent(recommender, without_session, one)[0] != session_intent(recommender, events, one)[0]


def test_a_user_with_no_past_gets_the_base_rate(fitted) -> None:
    recommender, events, impressions = fitted
    stranger = impressions.iloc[[0]].assign(user_id="nobody", session_id="never-seen")
    assert session_intent(recommender, events, stranger)[0] == pytest.approx(recommender.intent_base_rate)
