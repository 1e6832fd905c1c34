"""The repeat-or-explore gate: it only re-weighs seen against new items, and it learns when users come back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.test_sequence_baselines import T0, Constant
from training.sequence.baselines import Popularity
from training.sequence.data import SequenceData, Split, from_steps, leave_last_out
from training.sequence.evaluation import evaluate
from training.sequence.gate import FEATURES, RepeatExploreGate

DAY, MINUTE = 86_400, 60


def sessions(users: dict[str, list[list[str]]]) -> SequenceData:
    """Each inner list is one session: steps a minute apart, sessions a day apart."""
    rows = [
        (user, item, T0 + day * DAY + k * MINUTE, "purchase", f"{user}-{day}", "app")
        for user, visits in users.items()
        for day, visit in enumerate(visits)
        for k, item in enumerate(visit)
    ]
    return from_steps(pd.DataFrame(rows, columns=["user_id", "item_id", "time", "action", "session_id", "channel"]))


def comeback_split(users: int = 120, pool: int = 40) -> Split:
    """A user who opens a session buys again the first thing they ever bought; within a session they buy new things.

    Half the users' validation and test questions open a session (repeats), half continue one (new items).
    """
    rng = np.random.default_rng(0)
    log = {}
    for u in range(users):
        x = [f"i{v}" for v in rng.choice(pool, size=7, replace=False)]
        comes_back = [[x[0], x[1], x[2]], [x[3], x[4]], [x[0]], [x[1]]]
        log[f"u{u}"] = comes_back if u % 2 else [[x[0], x[1], x[2]], [x[3], x[4], x[5], x[6]]]
    return leave_last_out(sessions(log))


def gated_popularity() -> tuple[Split, Popularity, RepeatExploreGate]:
    """The comeback log, popularity fitted on it, and the gate fitted in front of popularity."""
    split = comeback_split()
    base = Popularity()
    base.fit(split)
    gated = RepeatExploreGate(base)
    gated.fit(split)
    return split, base, gated


def test_with_seen_items_excluded_the_gate_ranks_as_its_base() -> None:
    split, base, gated = gated_popularity()
    assert evaluate(gated, split, "test")["ndcg@10"] == pytest.approx(evaluate(base, split, "test")["ndcg@10"])


def test_the_gate_learns_that_opening_a_session_means_buying_again() -> None:
    split, base, gated = gated_popularity()
    assert set(gated.coefficients) == set(FEATURES) and gated.coefficients["opens_session"] > 0
    test = split.test
    repeat = gated.repeat_probability(split.data, test.users, test.cut)
    opening = split.data.user_ids[test.users].astype(str)
    opening = np.array([int(u[1:]) % 2 == 1 for u in opening])
    assert repeat[opening].min() > 0.5 > repeat[~opening].max()
    # The gated scores are one distribution whose mass on seen items is the gate's P(repeat).
    scores = gated.score(split.data, test.users, test.cut)
    probs = np.exp(scores.astype(np.float64))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)
    ours, theirs = (evaluate(r, split, "test", exclude_seen=False) for r in (gated, base))
    assert ours["ndcg@10_repeat"] > theirs["ndcg@10_repeat"] and ours["ndcg@10"] > theirs["ndcg@10"]


def test_a_gate_without_both_kinds_of_target_uses_the_smoothed_rate_and_needs_fit() -> None:
    split = leave_last_out(sessions({f"u{u}": [[f"a{u}", f"b{u}", f"c{u}", f"d{u}"]] for u in range(10)}))
    gated = RepeatExploreGate(Constant())
    with pytest.raises(RuntimeError, match="fit"):
        gated.score(split.data, split.test.users, split.test.cut)
    gated.fit(split)
    assert gated.coefficients == {} and gated.repeat_rate == pytest.approx(1 / 12)
    assert gated.repeat_probability(split.data, split.test.users, split.test.cut) == pytest.approx(np.full(10, 1 / 12))
