"""User tiers on a generated world: the command, point-in-time profiles, data-driven thresholds, clear failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from siyu.cli import app
from siyu.metrics import auc
from siyu.settings import Settings
from tests.conftest import make_settings
from tiers.build import read_log
from tiers.churn import fit_churn
from tiers.profile import PROFILE_COLUMNS, user_profiles, visit_gaps
from tiers.segments import LIFECYCLE, VALUE_TIERS, TierConfig, assign_tiers
from tiers.truth import true_expected_purchases
from tiers.value import value_scores

runner = CliRunner()


@pytest.fixture
def world(small_world: Settings, tmp_path: Path) -> Settings:
    """A private copy of the small world (the build writes its tiers into the data directory)."""
    copy = make_settings(tmp_path)
    shutil.copytree(small_world.data_dir, copy.data_dir)
    return copy


def test_build_writes_every_users_tiers_and_reports_against_the_truth(world: Settings) -> None:
    result = runner.invoke(
        app, ["tiers", "build", "--horizon", "7", "--data-dir", str(world.data_dir)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    written = list((world.data_dir / "tiers").glob("tiers-*.parquet"))
    assert len(written) == 1
    tiers = pd.read_parquet(written[0])
    events, _ = read_log(world)
    assert set(tiers["user_id"]) == set(events["user_id"])
    assert set(tiers["value_tier"]) <= set(VALUE_TIERS) and set(tiers["lifecycle"]) <= set(LIFECYCLE)
    assert tiers["churn_risk"].between(0, 1).all()
    assert (tiers["ltv_spend"] >= 0).all() and (tiers["ltv_orders"] >= 0).all()
    # Those who spent most this quarter are expected to spend more than those who spent nothing.
    spent = tiers["monetary_90d"] > tiers["monetary_90d"].quantile(0.9)
    assert tiers.loc[spent, "ltv_spend"].mean() > tiers.loc[tiers["monetary_90d"] == 0, "ltv_spend"].mean()
    phrases = ("value tiers", "forward-in-time AUC", "lifecycle vs the world's truth", "dormant after", "lightgbm")
    phrases = (*phrases, "AUC of the world's oracle")
    for phrase in (*phrases, "repeat_last_window"):
        assert phrase in result.output


def test_profiles_read_only_the_past(world: Settings) -> None:
    events, items = read_log(world)
    as_of = events["event_time"].min().floor("D") + pd.Timedelta(days=10)
    full = user_profiles(events, items, as_of)
    cut = user_profiles(events[events["event_time"] < as_of], items, as_of)
    pd.testing.assert_frame_equal(full, cut)
    assert list(full.columns) == list(PROFILE_COLUMNS) and (full["days_since_visit"] >= 0).all()


def test_thresholds_follow_the_configuration(world: Settings) -> None:
    events, items = read_log(world)
    as_of = events["event_time"].max().floor("D")
    profiles, gaps = user_profiles(events, items, as_of), visit_gaps(events, as_of)
    few, _ = assign_tiers(profiles, gaps, TierConfig(core_share=0.1))
    many, _ = assign_tiers(profiles, gaps, TierConfig(core_share=0.4))
    buyers = profiles["frequency_90d"] > 0
    assert (few["value_tier"] == "core").sum() == pytest.approx(0.1 * buyers.sum(), abs=3)
    assert (many["value_tier"] == "core").sum() > (few["value_tier"] == "core").sum()
    strict, t_strict = assign_tiers(profiles, gaps, TierConfig(gap_quantile=0.6))
    loose, t_loose = assign_tiers(profiles, gaps, TierConfig(gap_quantile=0.99))
    assert t_strict.dormant_after_days <= t_loose.dormant_after_days
    assert (strict["lifecycle"] == "dormant").sum() >= (loose["lifecycle"] == "dormant").sum()
    assert np.isin(few.loc[~buyers, "value_tier"], ["potential", "silent"]).all()  # no buyer, never core


def test_a_date_before_any_event_and_an_empty_log_are_refused(world: Settings, tmp_path: Path) -> None:
    early = runner.invoke(app, ["tiers", "build", "--as-of", "2001-01-01", "--data-dir", str(world.data_dir)])
    assert early.exit_code == 1 and "no user has an event before 2001-01-01" in early.output
    empty = runner.invoke(app, ["tiers", "build", "--data-dir", str(tmp_path / "nothing-here")])
    assert empty.exit_code == 1 and "generate or import data first" in empty.output
    assert not (world.data_dir / "tiers").exists()


def test_a_log_too_short_for_churn_still_builds_tiers(world: Settings) -> None:
    result = runner.invoke(app, ["tiers", "build", "--horizon", "60", "--data-dir", str(world.data_dir)])
    assert result.exit_code == 0, result.output
    assert "no churn risk" in result.output and "shorter --horizon" in result.output
    assert "no lifetime value: lifetime value needs events" in " ".join(result.output.split())


def test_value_scores_reward_ranking_and_sizing_spend() -> None:
    realised = np.array([0.0, 0.0, 10.0, 30.0, 60.0, 0.0, 0.0, 0.0, 0.0, 100.0])
    perfect = value_scores(realised, realised)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["mae"] == 0 and perfect["total_ratio"] == 1
    assert perfect["top_decile_share"] == pytest.approx(100 / 200)  # the top tenth is the one 100 spender
    backwards = value_scores(-realised, realised)
    assert backwards["spearman"] < 0 and backwards["top_decile_share"] == 0
    assert value_scores(realised * 2, realised)["total_ratio"] == pytest.approx(2.0)


def test_churn_is_judged_next_to_the_worlds_oracle(world: Settings) -> None:
    """The world's expected purchases rank who will not buy better than anything read from behaviour."""
    events, items = read_log(world)
    as_of = events["event_time"].max().normalize() + pd.Timedelta(days=1)
    churn = fit_churn(events, items, as_of, 7)
    expected = true_expected_purchases(world, churn.test_labels.index, churn.tested_at, churn.horizon_days)
    assert expected is not None and expected.notna().all() and (expected >= 0).all()
    oracle = auc(churn.test_labels.to_numpy(), -expected.to_numpy())
    assert oracle > max(churn.test_auc, churn.baseline_auc) > 0.5
    (world.truth_dir / "users.parquet").unlink()  # imported data keeps no truth: no oracle, no failure
    assert true_expected_purchases(world, churn.test_labels.index, churn.tested_at, 7) is None
