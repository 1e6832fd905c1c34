"""The shared metrics give the textbook values on hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from siyu.metrics import (
    auc,
    expected_calibration_error,
    hit_rate_at_k,
    logloss,
    ndcg_at_k,
    ranking_metrics,
    target_ranks,
)


def test_auc_and_logloss() -> None:
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert math.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))
    assert math.isclose(logloss(np.array([1, 0]), np.array([0.5, 0.5])), math.log(2))


def test_ece_zero_when_calibrated_and_large_when_not() -> None:
    labels = np.array([1, 0, 0, 0] * 50)
    assert expected_calibration_error(labels, np.full(200, 0.25)) < 1e-12
    assert math.isclose(expected_calibration_error(labels, np.full(200, 0.95)), 0.70)


def test_ranking_metrics_over_full_lists() -> None:
    ranked = [["a", "b", "c"], ["x", "y", "z"]]
    relevant = [{"a"}, {"z"}]
    assert hit_rate_at_k(ranked, relevant, k=2) == 0.5
    assert math.isclose(ndcg_at_k(ranked, relevant, k=3), (1.0 + 1 / math.log2(4)) / 2)


# ----------------------------------------------------------------------------------- full-ranking next-item metrics


def test_target_ranks_counts_items_above_and_half_the_ties() -> None:
    # Column 0 is padding and never competes, whatever its score.
    scores = np.array(
        [
            [9.0, 0.1, 0.5, 0.9, 0.3],  # target 2 (0.5): only 0.9 above -> rank 2
            [9.0, 0.2, 0.2, 0.2, 0.1],  # target 1 (0.2): two other items tied -> 1 + 0 + 0.5 * 2 = 2
            [9.0, 0.4, 0.3, 0.2, 0.1],  # target 4 (0.1): last of 4
        ]
    )
    np.testing.assert_allclose(target_ranks(scores, np.array([2, 1, 4])), [2.0, 2.0, 4.0])


def test_a_constant_scorer_ranks_every_target_in_the_middle() -> None:
    scores = np.zeros((3, 101))
    ranks = target_ranks(scores, np.array([1, 50, 100]))
    np.testing.assert_allclose(ranks, [50.5, 50.5, 50.5])  # (100 items + 1) / 2, never 1
    assert ranking_metrics(ranks, k=10)["hr@10"] == 0.0


def test_excluded_items_leave_the_competition_but_the_target_never_does() -> None:
    scores = np.array([[0.0, 0.9, 0.8, 0.7, 0.1], [0.0, 0.9, 0.8, 0.7, 0.1]])
    # Row 0 excludes items 1 and 2 (both above the target 3); row 1 excludes its own target and item 1.
    exclude = sp.csr_matrix(np.array([[0, 1, 1, 0, 0], [0, 1, 0, 1, 0]]))
    np.testing.assert_allclose(target_ranks(scores, np.array([3, 3]), exclude), [1.0, 2.0])
    # Duplicate cells in the exclusion count once.
    twice = sp.csr_matrix((np.ones(3), (np.zeros(3, dtype=int), np.array([1, 1, 2]))), shape=(1, 5))
    assert target_ranks(scores[:1], np.array([3]), twice)[0] == 1.0


def test_excluded_ties_stop_counting_and_nan_scores_rank_last() -> None:
    scores = np.array([[0.0, 0.5, 0.5, 0.5, np.nan]])
    assert target_ranks(scores, np.array([1]))[0] == 2.0
    assert target_ranks(scores, np.array([1]), sp.csr_matrix(np.array([[0, 0, 1, 1, 0]])))[0] == 1.0
    assert target_ranks(scores, np.array([4]))[0] == 4.0


def test_ranking_metrics_from_ranks_by_hand() -> None:
    got = ranking_metrics(np.array([1.0, 3.0, 11.0, 2.5]), k=10)
    assert set(got) == {"ndcg@10", "hr@10", "mrr"}
    assert math.isclose(got["ndcg@10"], (1.0 + 1 / math.log2(4) + 0.0 + 1 / math.log2(3.5)) / 4)
    assert got["hr@10"] == 0.75
    assert math.isclose(got["mrr"], (1 + 1 / 3 + 1 / 11 + 1 / 2.5) / 4)
    assert set(ranking_metrics(np.array([4.0]), k=5)) == {"ndcg@5", "hr@5", "mrr"}
    assert math.isnan(ranking_metrics(np.empty(0))["mrr"])
