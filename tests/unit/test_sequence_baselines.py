"""The evaluation harness and each simple baseline on tiny logs where the right next item is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from training.sequence.baselines import (
    EASE,
    CategoryPopularity,
    ItemKNN,
    PersonalThenGlobal,
    PersonalTopFrequency,
    Popularity,
    Transitions,
    all_baselines,
)
from training.sequence.data import SequenceData, Split, from_steps, leave_last_out
from training.sequence.evaluation import OracleRecommender, Recommender, benchmark, evaluate, repeat_targets
from training.sequence.signals import history_weights

T0 = 1_700_000_000


def sequences(walks: dict[str, list[str]]) -> SequenceData:
    """One view per item in the given order, an hour apart, each its own session."""
    rows = [
        (user, item, T0 + 3_600 * k, "view", f"{user}-{k}", "app")
        for user, items in walks.items()
        for k, item in enumerate(items)
    ]
    return from_steps(pd.DataFrame(rows, columns=["user_id", "item_id", "time", "action", "session_id", "channel"]))


def top_item(rec: Recommender, data: SequenceData, user: int, cut: int, new_only: bool = True) -> str:
    """The highest-scored item token's id (among items not in the history when `new_only`)."""
    scores = rec.score(data, np.array([user]), np.array([cut]))[0]
    scores[0] = -np.inf
    if new_only:
        scores[data.item[data.offsets[user] : data.offsets[user] + cut]] = -np.inf
    return str(data.item_vocab[int(np.argmax(scores)) - 1])


class Constant:
    """Scores every item the same: must not look better than chance."""

    name = "constant"

    def fit(self, split: Split) -> None:
        pass

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        return np.zeros((len(users), data.n_items + 1), dtype=np.float32)


# Every user walks a -> b at some point; filler items around it are spread evenly.
AB_WALKS = {f"u{n}": [f"f{n % 5}", f"g{n % 3}", "a", "b", f"h{n % 4}", "a", "b"] for n in range(30)}


# ------------------------------------------------------------------------------------------------- harness


def test_a_constant_scorer_earns_the_middle_rank_and_batches_do_not_matter() -> None:
    split = leave_last_out(sequences(AB_WALKS))
    one = evaluate(Constant(), split, exclude_seen=False, batch=1)
    many = evaluate(Constant(), split, exclude_seen=False, batch=1024)
    assert one["mrr"] == pytest.approx(many["mrr"])
    n_items = split.data.n_items
    assert one["mrr"] == pytest.approx(1 / ((n_items + 1) / 2))
    assert one["users"] == 30 and one["infer_ms_per_user"] >= 0


def test_excluding_seen_items_leaves_repeat_targets_out_and_says_how_many() -> None:
    data = sequences({"u1": ["a", "b", "c", "a"], "u2": ["a", "b", "c", "d"], "u3": ["x", "y", "x", "z"]})
    split = leave_last_out(data)
    assert list(repeat_targets(data, split.test)) == [True, False, False]
    assert list(repeat_targets(data, split.valid)) == [False, False, True]
    strict = evaluate(Constant(), split, exclude_seen=True)
    assert strict["users"] == 2 and strict["repeat_share"] == pytest.approx(1 / 3)
    loose = evaluate(Constant(), split, exclude_seen=False)
    assert loose["users"] == 3
    assert {"ndcg@10_repeat", "hr@10_new", "mrr_new"} <= set(loose)


def test_oracle_rows_without_truth_are_left_out_and_counted() -> None:
    data = sequences(AB_WALKS)
    split = leave_last_out(data)
    truth = np.full((data.n_users, data.n_items), 0.01, dtype=np.float32)
    truth[split.test.users, split.test.target - 1] = 0.9  # the oracle knows the next item
    truth[:4] = np.nan  # no ground truth for the first four users
    result = evaluate(OracleRecommender(truth), split, exclude_seen=False)
    assert result["unscored_users"] == 4 and result["users"] == 26
    assert result["ndcg@10"] == 1.0

    def from_ids(user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        rows = np.searchsorted(data.user_ids.astype(str), user_ids.astype(str))
        return truth[rows]

    again = evaluate(OracleRecommender(from_ids), split, exclude_seen=False)
    assert again["unscored_users"] == 4 and again["ndcg@10"] == 1.0


def test_a_row_mixing_scores_and_nan_is_an_error() -> None:
    class Broken(Constant):
        def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
            out = super().score(data, users, cut)
            out[:, 2] = np.nan
            return out

    with pytest.raises(ValueError, match="NaN"):
        evaluate(Broken(), leave_last_out(sequences(AB_WALKS)), exclude_seen=False)


# ----------------------------------------------------------------------------------------------- baselines


def test_transitions_rank_the_item_that_always_follows_first() -> None:
    data = sequences(AB_WALKS)
    split = leave_last_out(data)
    rec = Transitions(tune_exclude_seen=False)
    rec.fit(split)
    assert top_item(rec, data, 0, 6, new_only=False) == "b"  # history ends with a
    assert len(rec.tuning) == 9 and set(rec.params) == {"decay", "backoff"}
    assert evaluate(rec, split, exclude_seen=False)["hr@10"] == 1.0


def test_popularity_ranks_the_most_stepped_item_first_and_tunes_its_window() -> None:
    data = sequences({"u1": ["a", "b", "a", "c"], "u2": ["a", "c", "d", "b"], "u3": ["a", "d", "e", "f"]})
    rec = Popularity()
    rec.fit(leave_last_out(data))
    assert top_item(rec, data, 1, 0) == "a"
    assert "window_days" in rec.params and len(rec.tuning) == 4


def test_personal_top_frequency_puts_the_users_most_frequent_item_first() -> None:
    data = sequences({"u1": ["x", "y", "x", "z", "x", "y"], "u2": ["y", "y", "z", "w"], "u3": ["z", "w", "z", "y"]})
    rec = PersonalTopFrequency(tune_exclude_seen=False)
    rec.fit(leave_last_out(data))
    assert top_item(rec, data, 0, 5, new_only=False) == "x"
    scores = rec.score(data, np.array([0]), np.array([5]))[0]
    tokens = {str(item): k + 1 for k, item in enumerate(data.item_vocab)}
    # Own items first (x, then y, z), then the rest by popularity (w).
    assert scores[tokens["z"]] > scores[tokens["w"]]
    # Seen items excluded: it only has popularity left, and its grid is not tuned for that protocol.
    assert len(PersonalTopFrequency()._candidates()) == 1


def test_personal_then_global_falls_back_to_popularity_for_new_users() -> None:
    data = sequences({"u1": ["p", "q", "p", "r"], "u2": ["p", "s", "t", "p"], "u3": ["q", "p", "s", "u"]})
    rec = PersonalThenGlobal(tune_exclude_seen=False)
    rec.fit(leave_last_out(data))
    assert top_item(rec, data, 2, 0) == "p"  # an empty history gets the most popular item
    assert len(rec.tuning) == 4 * 3 * 2


def test_item_knn_recommends_the_item_bought_by_the_same_people() -> None:
    walks = {f"u{n}": [f"x{n % 3}", "milk", "cereal", f"y{n % 2}", f"v{n}", f"w{n}"] for n in range(12)}
    walks["new"] = ["z", "milk", "z2", "z3"]
    data = sequences(walks)
    rec = ItemKNN(tune_exclude_seen=True)
    rec.fit(leave_last_out(data))
    assert top_item(rec, data, list(data.user_ids).index("new"), 2) == "cereal"


def test_ease_learns_co_occurrence_and_skips_huge_catalogues() -> None:
    walks = {f"u{n}": [f"x{n % 3}", "milk", "cereal", f"y{n % 2}", f"v{n}", f"w{n}"] for n in range(12)}
    walks["new"] = ["z", "milk", "z2", "z3"]
    data = sequences(walks)
    split = leave_last_out(data)
    rec = EASE(grid={"lam": (1.0, 10.0), "decay": (1.0,)})
    rec.fit(split)
    assert top_item(rec, data, list(data.user_ids).index("new"), 2) == "cereal"
    assert rec.params["lam"] in (1.0, 10.0) and len(rec.tuning) == 2
    small = EASE(max_items=3)
    result = benchmark(small, split)
    assert "max_items=3" in str(result["skipped"])


def test_every_baseline_runs_end_to_end_on_both_protocols() -> None:
    walks = {f"u{n}": [f"f{n % 5}", "a", "b", f"g{n % 3}", "c", f"h{n % 7}"] for n in range(40)}
    split = leave_last_out(sequences(walks))
    for exclude_seen in (True, False):
        for rec in all_baselines(tune_exclude_seen=exclude_seen):
            result = benchmark(rec, split, exclude_seen=exclude_seen)
            assert isinstance(rec, Recommender)
            if rec.name == "category_popularity":  # these walks name no categories
                assert result["skipped"] == "the log names no item categories"
                continue
            assert 0.0 <= result["ndcg@10"] <= 1.0 and not math.isnan(result["mrr"]), rec.name
            assert result["train_seconds"] >= 0


def test_category_popularity_follows_the_newest_steps_category() -> None:
    """Shoppers stay in a category: after a shoe comes the most popular shoe, after a hat the top hat."""
    category = {"shoe1": "shoes", "shoe2": "shoes", "shoe3": "shoes", "hat1": "hats", "hat2": "hats"}
    walks = {f"s{n}": ["hat2", "shoe3", "shoe1", "shoe2"] for n in range(12)}
    walks |= {f"h{n}": ["shoe3", "hat1", "hat2"] for n in range(6)}
    walks["x"] = ["hat1", "shoe3"]
    data = sequences(walks).with_categories(pd.Series(category))
    assert data.n_categories == 2 and data.item_category[0] == 0
    rec = CategoryPopularity(grid={"window_days": (None,), "decay": (0.0,), "popularity_weight": (0.1,)})
    rec.fit(leave_last_out(data))
    x = int(np.flatnonzero(data.user_ids == "x")[0])
    assert top_item(rec, data, x, 2) in {"shoe1", "shoe2"}  # newest step a shoe: shoes first, hats after
    assert top_item(rec, data, x, 1) == "hat2"  # newest step a hat


def test_session_scope_reads_the_category_the_session_is_about() -> None:
    """Hats yesterday, shoes today with one hat among them: the session in progress is a shoe session."""
    category = {"shoe1": "shoes", "shoe2": "shoes", "shoe3": "shoes", "hat1": "hats", "hat2": "hats", "hat3": "hats"}
    # Minutes apart within a session, a day apart between sessions.
    history = [("hat1", 0), ("hat2", 60), ("shoe3", 86_400), ("shoe1", 86_460), ("hat2", 86_520)]
    rows = [("x", item, T0 + offset, "view", f"x-{offset // 86_400}", "app") for item, offset in history]
    rows += [(f"u{n}", item, T0, "view", f"u{n}", "app") for n in range(5) for item in ("shoe2", "hat3")]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "time", "action", "session_id", "channel"])
    data = from_steps(frame).with_categories(pd.Series(category))
    x, cut = np.flatnonzero(data.user_ids == "x")[:1], np.array([5])
    today = history_weights(data, x, cut, sessions=1)
    assert sorted(data.item_vocab[today.indices - 1]) == ["hat2", "shoe1", "shoe3"]
    assert history_weights(data, x, cut, sessions=2).nnz == 4  # both days; hat2's two steps share a column
    grid = {"window_days": (None,), "decay": (1.0,), "popularity_weight": (0.1,)}
    session = CategoryPopularity(grid={**grid, "scope": ("session",)})
    recent = CategoryPopularity(grid={**grid, "scope": ("recent",)})
    for rec in (session, recent):
        rec.fit(leave_last_out(data, min_steps=1))
    assert top_item(session, data, int(x[0]), 5) == "shoe2"  # two shoes and a hat today
    assert top_item(recent, data, int(x[0]), 5) == "hat3"  # three hats and two shoes over both days
