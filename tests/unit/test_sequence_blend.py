"""The validation-tuned blend: each part's scores on one scale, a search that keeps what helps."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.test_sequence_baselines import Constant, sequences
from training.sequence.baselines import EASE, Popularity, Transitions
from training.sequence.blend import FLOOR_VS_UNIFORM, ScoreBlend, log_probabilities
from training.sequence.data import Split, leave_last_out
from training.sequence.evaluation import evaluate


def cycle_split(users: int = 60, items: int = 12, length: int = 8) -> Split:
    """Each user walks the item cycle from a random start: every target is new and follows its predecessor."""
    rng = np.random.default_rng(0)
    starts = rng.integers(items, size=users)
    walks = {f"u{u}": [f"i{(s + k) % items}" for k in range(length)] for u, s in enumerate(starts)}
    return leave_last_out(sequences(walks))


class Logits(Constant):
    """A part that declares its scores to be logits, as the decision-path model does."""

    name = "logits"
    scores_are_logits = True


def test_every_part_becomes_a_log_distribution_over_the_items() -> None:
    scores = np.array([[9.0, 2.0, 0.0, -3.0, 1.0], [9.0, 0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    counts = np.exp(log_probabilities(Constant(), scores))
    assert counts[:, 0].tolist() == [0.0, 0.0]  # padding is never a candidate
    np.testing.assert_allclose(counts[:, 1:].sum(axis=1), 1.0, rtol=1e-3)
    # A negative score (EASE's) is no support: it sits at the floor with the zero, below every supported item.
    assert counts[0, 3] == counts[0, 2] == pytest.approx(FLOOR_VS_UNIFORM / 4 / (1 + FLOOR_VS_UNIFORM), rel=1e-3)
    assert counts[0, 1] > counts[0, 4] > counts[0, 2]
    # A part with no opinion at all is uniform, not NaN.
    np.testing.assert_allclose(counts[1, 1:], 0.25, rtol=1e-3)
    softmax = np.exp(log_probabilities(Logits(), scores))
    np.testing.assert_allclose(softmax[0, 1:], np.exp([2.0, 0.0, -3.0, 1.0]) / np.exp([2.0, 0.0, -3.0, 1.0]).sum())


def test_the_blend_keeps_the_part_that_knows_and_drops_the_one_that_does_not() -> None:
    split = cycle_split()
    transitions, constant = Transitions(), Constant()
    for part in (transitions, constant):
        part.fit(split)
    mix = ScoreBlend([constant, transitions], name="mix")
    mix.fit(split)
    assert mix.weights == {"transitions": 1.0}  # a uniform part cannot change a ranking: no weight is better
    alone = evaluate(transitions, split, "test")
    assert evaluate(mix, split, "test")["ndcg@10"] == pytest.approx(alone["ndcg@10"])
    # Every tried mix is on record, and the chosen one is the best of them on validation.
    assert len(mix.tuning) == 2 + 5
    assert max(t["valid_ndcg@10"] for t in mix.tuning) == pytest.approx(
        evaluate(mix, split, "valid", max_users=mix.tune_users)["ndcg@10"]
    )
    # Scoring another mix is a question, not a change: the chosen weights stay as they are.
    users, cut = split.test.users, split.test.cut
    other = mix.mixed(split.data, users, cut, {"constant": 2.0})
    np.testing.assert_allclose(other, 2.0 * log_probabilities(constant, constant.score(split.data, users, cut)))
    assert mix.weights == {"transitions": 1.0}


def test_the_blend_is_never_worse_on_validation_than_its_best_part() -> None:
    split = cycle_split()
    parts = [Popularity(), Transitions(), EASE()]
    for part in parts:
        part.fit(split)
    for exclude_seen in (True, False):
        mix = ScoreBlend(parts, exclude_seen=exclude_seen)
        mix.fit(split)
        best_alone = max(evaluate(p, split, "valid", exclude_seen=exclude_seen)["ndcg@10"] for p in parts)
        assert evaluate(mix, split, "valid", exclude_seen=exclude_seen)["ndcg@10"] >= best_alone - 1e-9
        scores = mix.score(split.data, split.test.users, split.test.cut)
        assert scores.shape == (len(split.test), split.data.n_items + 1)
        assert np.isneginf(scores[:, 0]).all() and np.isfinite(scores[:, 1:]).all()


def test_a_blend_refuses_no_parts_twin_names_and_scoring_before_fit() -> None:
    with pytest.raises(ValueError, match="distinct"):
        ScoreBlend([])
    with pytest.raises(ValueError, match="distinct"):
        ScoreBlend([Constant(), Constant()])
    split = cycle_split()
    with pytest.raises(RuntimeError, match="fit"):
        ScoreBlend([Constant()]).score(split.data, split.test.users, split.test.cut)
