"""The backtest on a real generated world: policies agree with the DP's own expectations, figures are complete."""

from __future__ import annotations

import numpy as np
import pytest

from pricing.backtest.play import closed_loop, demand_uniforms, fixed, play
from pricing.backtest.report import run_world_backtest
from pricing.backtest.scenario import load_scenario
from pricing.optimiser.solve import solve
from siyu.settings import Settings
from tests.conftest import SMALL_WORLD

START, HORIZON = 14, 7


@pytest.fixture(scope="module")
def scenario(small_world: Settings):
    return load_scenario(small_world, START, HORIZON)


def test_scenario_is_what_the_world_holds(scenario, small_world: Settings) -> None:
    assert scenario.truth.shape == (scenario.item_ids.size, HORIZON, scenario.ladder.shape[1])
    assert (np.diff(scenario.ladder, axis=1) > 0).all()
    assert (scenario.supply > 0).all()
    assert set(scenario.kind) <= {"regular", "perishable", "seasonal"}
    # Fresh food arrives only in batches and expires at the end of its shelf life.
    fresh = scenario.kind == "perishable"
    assert scenario.expire[fresh].any() and not scenario.expire[scenario.kind == "regular"].any()


def test_market_simulation_matches_the_dp_expectation(scenario) -> None:
    """Playing the oracle policy on many seeds realises, on average, the value the DP says it expects."""
    plan = solve(scenario.problem(scenario.truth))
    uniforms = demand_uniforms(scenario, seeds=400, seed=1)
    played = play(scenario, closed_loop(plan), uniforms).value.sum(axis=1)
    expected = plan.value.sum()
    assert abs(played.mean() - expected) < 4 * played.std(ddof=1) / np.sqrt(played.size)
    # Holding today's price realises the DP's own hold-price figure too.
    held = play(scenario, fixed(plan.hold_index), uniforms).value.sum(axis=1)
    assert abs(held.mean() - plan.hold_value.sum()) < 4 * held.std(ddof=1) / np.sqrt(held.size)


def test_common_random_numbers_make_policies_comparable(scenario) -> None:
    uniforms = demand_uniforms(scenario, seeds=5)
    one = play(scenario, fixed(scenario.current_index), uniforms)
    two = play(scenario, fixed(scenario.current_index), uniforms)
    np.testing.assert_array_equal(one.value, two.value)
    # A lower price on the same draws never sells fewer units.
    lower = play(scenario, fixed(np.maximum(scenario.current_index - 3, 0)), uniforms)
    assert (lower.units >= one.units).all()


def test_backtest_end_to_end_reports_every_policy_and_cell(small_world: Settings, tmp_path) -> None:
    summary = run_world_backtest(small_world, 40, HORIZON, seeds=4, start_day=START, out=tmp_path)
    f = summary.figures
    assert f["skus"] == 40 and f["periods"] == HORIZON and f["seeds"] == 4
    for key in ("revenue_vs_oracle_learned_demand", "uplift_vs_best_static", "uplift_vs_current_price"):
        assert np.isfinite(f[key])
    assert f["policies"]["oracle"]["value_vs_oracle"]["mean"] == pytest.approx(1.0)
    assert 0.5 < f["revenue_vs_oracle_learned_demand"] < 1.1
    assert {"regular", "perishable"} <= set(f["cells"])
    assert (tmp_path / "backtest.json").exists()
    assert all(p.exists() and p.stat().st_size > 10_000 for p in summary.plots)


def test_backtest_needs_history_and_truth_ahead(small_world: Settings) -> None:
    with pytest.raises(ValueError, match="start_day"):
        run_world_backtest(small_world, 10, HORIZON, seeds=2, start_day=SMALL_WORLD.days - 3)
