"""The decision-path model's point-in-time impression features: they read the past only, and the past moves them."""

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
from training.sequence.path_features import PATH_FEATURES, path_features
from training.sequence.recommender import SASRecRecommender
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


def _mid_session(events: pd.DataFrame, impressions: pd.DataFrame) -> pd.DataFrame:
    """One impression late in the log whose session already had an earlier event."""
    first = events.groupby("session_id")["event_time"].min()
    later = impressions["event_timestamp"].to_numpy() > first.reindex(impressions["session_id"]).to_numpy()
    return impressions.iloc[[int(np.flatnonzero(later)[-1])]]


def test_every_impression_gets_an_intent_probability_and_an_affinity(fitted) -> None:
    recommender, events, impressions = fitted
    features = path_features(recommender, events, impressions)
    assert list(features.columns) == list(PATH_FEATURES) and features.index.equals(impressions.index)
    intent, affinity = features["session_intent"].to_numpy(), features["path_affinity"].to_numpy()
    assert ((intent > 0) & (intent < 1)).all() and np.unique(intent).size > len(intent) // 4
    known = ~np.isnan(affinity)
    assert known.mean() > 0.8 and (affinity[known] < 0).all()  # log-probabilities
    # On average the model gives the item the user is about to view more than a uniform guess would.
    assert np.exp(affinity[known]).mean() > 1 / recommender.model.n_items


def test_nothing_at_or_after_the_impression_is_read(fitted) -> None:
    recommender, events, impressions = fitted
    one = _mid_session(events, impressions)
    before = events[events["event_time"] < one["event_timestamp"].iat[0]]
    assert len(before) < len(events)
    pd.testing.assert_frame_equal(path_features(recommender, before, one), path_features(recommender, events, one))


def test_the_session_so_far_moves_both_features(fitted) -> None:
    recommender, events, impressions = fitted
    one = _mid_session(events, impressions)
    without_session = events[events["session_id"] != one["session_id"].iat[0]]
    changed = (
        path_features(recommender, without_session, one).iloc[0] != path_features(recommender, events, one).iloc[0]
    )
    assert changed.all()


def test_no_past_means_the_base_rate_and_no_affinity(fitted) -> None:
    recommender, events, impressions = fitted
    stranger = impressions.iloc[[0]].assign(user_id="nobody", session_id="never-seen")
    features = path_features(recommender, events, stranger).iloc[0]
    assert features["session_intent"] == pytest.approx(recommender.intent_base_rate)
    assert np.isnan(features["path_affinity"])
