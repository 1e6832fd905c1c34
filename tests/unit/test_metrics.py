"""The shared metrics give the textbook values on hand-checked cases."""

from __future__ import annotations

import math

import numpy as np

from siyu.metrics import auc, expected_calibration_error, hit_rate_at_k, logloss, ndcg_at_k


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
