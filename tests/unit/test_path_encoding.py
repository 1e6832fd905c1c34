"""Serving encodes every user's path once per rebuild; a rebuild re-encodes only the paths that changed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from serving.recommend.paths import DecisionPaths
from training.sequence.data import SequenceData, leave_last_out
from training.sequence.model import SequenceModelConfig
from training.sequence.recommender import SASRecRecommender
from training.sequence.sources import own_events


@pytest.fixture(scope="module")
def model_and_data(small_world) -> tuple[SASRecRecommender, SequenceData]:
    data = own_events(small_world)
    recommender = SASRecRecommender(SequenceModelConfig(hidden=16, heads=1, budget_seconds=3, threads=1, max_epochs=2))
    recommender.fit(leave_last_out(data))
    return recommender, data


def _without_newest_step(data: SequenceData, user: int) -> SequenceData:
    """The log as it was before `user`'s newest step arrived."""
    keep = np.ones(data.n_steps, dtype=bool)
    keep[data.offsets[user + 1] - 1] = False
    steps = ("item", "action", "channel", "gap", "time", "purchase_follows", "touch")
    columns = {name: getattr(data, name)[keep] for name in steps if getattr(data, name) is not None}
    offsets = data.offsets.copy()
    offsets[user + 1 :] -= 1
    return dataclasses.replace(data, offsets=offsets, **columns)


def test_a_rebuild_re_encodes_only_the_user_who_acted_and_answers_as_a_full_build(model_and_data) -> None:
    model, data = model_and_data
    user = int(np.argmax(data.lengths))
    before = DecisionPaths(_without_newest_step(data, user), model, "1")
    rebuilt = DecisionPaths(data, model, "1", previous=before)
    full = DecisionPaths(data, model, "1")

    assert before.reencoded == full.reencoded == data.n_users and rebuilt.reencoded == 1
    assert not np.allclose(before.encoded.hidden[user], rebuilt.encoded.hidden[user])
    np.testing.assert_allclose(rebuilt.encoded.hidden, full.encoded.hidden, atol=1e-5)
    for someone in (data.user_ids[user], data.user_ids[0]):
        assert rebuilt.suggest(someone, 10).next_items == full.suggest(someone, 10).next_items


def test_a_new_model_encodes_every_path(model_and_data) -> None:
    model, data = model_and_data
    other = SASRecRecommender(SequenceModelConfig(hidden=16, heads=1, budget_seconds=1, threads=1, max_epochs=1))
    other.fit(leave_last_out(data))
    assert DecisionPaths(data, other, "2", previous=DecisionPaths(data, model, "1")).reencoded == data.n_users
