"""The conversion report's figures: history groups, oracle beside the model, lift, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from training.conversion_report import evaluation, lift_by_decile, markdown, scores


@pytest.fixture
def predictions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.01, 0.4, 20_000)
    labels = (rng.random(truth.size) < truth).astype(int)
    noisy = np.clip(truth + rng.normal(0, 0.08, truth.size), 0.001, 0.999)
    depth = rng.integers(0, 9, truth.size)
    return labels, noisy, depth, truth


def test_history_groups_partition_the_rows_and_carry_the_oracle(predictions) -> None:
    labels, probs, depth, truth = predictions
    report = evaluation(labels, probs, depth, oracle=truth)
    groups = report["by_history"]
    assert set(groups) == {"none", "1-4", "5+"}
    assert sum(g["rows"] for g in groups.values()) == labels.size
    assert groups["none"]["rows"] == (depth == 0).sum() and groups["5+"]["rows"] == (depth >= 5).sum()
    for entry in groups.values():
        assert entry["oracle_auc"] > entry["auc"]  # the truth ranks better than a noisy copy of it
    assert report["oracle_auc"] > report["auc"] > 0.6
    assert report["oracle_ece"] < 0.01  # true probabilities are calibrated


def test_lift_deciles_cover_every_row_and_fall_from_the_top(predictions) -> None:
    labels, probs, _, _ = predictions
    lift = lift_by_decile(labels, probs)
    assert len(lift) == 10 and sum(row["rows"] for row in lift) == labels.size
    assert lift[0]["lift"] > 1.5 > lift[-1]["lift"]
    assert lift[0]["predicted"] > lift[-1]["predicted"]


def test_a_miscalibrated_model_shows_in_ece_and_brier(predictions) -> None:
    labels, _, _, truth = predictions
    honest, inflated = scores(labels, truth), scores(labels, np.clip(truth * 2, 0, 0.999))
    assert inflated["ece"] > 0.1 > honest["ece"] and inflated["brier"] > honest["brier"]
    assert inflated["auc"] == pytest.approx(honest["auc"])  # ranking unchanged: AUC cannot see calibration


def test_an_empty_group_reports_zero_rows_not_a_crash(predictions) -> None:
    labels, probs, _, _ = predictions
    report = evaluation(labels, probs, np.full(labels.size, 2))
    assert report["by_history"]["none"] == {"rows": 0.0} and report["by_history"]["1-4"]["rows"] == labels.size
    text = markdown(report, "conversion evaluation", ["a note"])
    assert "## by user history" in text and "| none | 0 |" in text and "lift.png" in text
