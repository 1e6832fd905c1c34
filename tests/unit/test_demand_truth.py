"""The world's demand truth is what the world does: re-simulating a day at a fixed price realises it."""

from __future__ import annotations

import copy

import numba
import numpy as np
import pandas as pd
import pytest

from siyu.settings import Settings
from siyu.world.demand_truth import TRUTH_PRICE_MULTIPLIERS
from siyu.world.entities import WorldConfig
from siyu.world.generator import build_simulator
from siyu.world.simulate import Simulator
from tests.conftest import SMALL_WORLD

WORLD = WorldConfig(users=3000, items=80, days=10, seed=5)
DAY = 6  # a weekend day with plenty of active users, and a state built by the days before it
# Units per buyer are 1 + Poisson(0.25): Var(units) <= E[units] x E[q^2] / E[q] = E[units] x 1.45.
VARIANCE_FACTOR = (0.25 + 1.25**2) / 1.25


@pytest.fixture(scope="module")
def day_start() -> Simulator:
    """The simulator at the start of DAY: days 0..DAY-1 simulated, so users carry due items and complements."""
    sim = build_simulator(WORLD)
    for day in range(DAY):
        sim.run_day(day)
    state = sim.choice_state(DAY)
    assert state.item.size > 100 and (state.due > 0).any() and (state.complement > 0).any()
    return sim


def _resimulate(snapshot: Simulator, multiplier: float, replications: int) -> pd.Series:
    """Units sold per item on DAY at price = multiplier x list price, promotions off, stock unlimited."""
    units = pd.Series(0.0, index=snapshot.items.ids)
    for r in range(replications):
        sim = copy.deepcopy(snapshot)
        sim.price[:, DAY] = multiplier * sim.items.list_price
        sim.promo[:, DAY] = False
        sim.rng = np.random.default_rng([WORLD.seed, 99, r])
        sim.stock[:] = 10**9
        day = sim.run_day(DAY)
        assert day.impressions["in_stock"].all()
        units = units.add(day.impressions.groupby("item_id")["quantity"].sum(), fill_value=0.0)
    return units


def _truth(snapshot: Simulator, multiplier: float) -> pd.Series:
    expected = snapshot.true_demand(DAY, np.array([multiplier]))[:, 0]
    return pd.Series(expected, index=snapshot.items.ids)


@pytest.mark.parametrize("multiplier", [0.7, 1.15])
def test_resimulated_day_at_a_fixed_price_realises_the_true_demand(day_start: Simulator, multiplier: float) -> None:
    replications = 40
    realised = _resimulate(day_start, multiplier, replications)
    expected = _truth(day_start, multiplier) * replications
    z_total = (realised.sum() - expected.sum()) / np.sqrt(expected.sum() * VARIANCE_FACTOR)
    assert abs(z_total) < 4, f"total units {realised.sum():.0f} vs expected {expected.sum():.1f} (z={z_total:.2f})"
    z_item = (realised - expected) / np.sqrt(expected * VARIANCE_FACTOR)
    busy = expected >= 5
    assert busy.sum() >= 20
    assert (z_item[busy].abs() > 4).mean() < 0.03, z_item[busy].sort_values().tail()
    # The check has power: the truth at another price is rejected by the same draws.
    other = _truth(day_start, 1.2 if multiplier < 1 else 0.6) * replications
    z_other = (realised.sum() - other.sum()) / np.sqrt(other.sum() * VARIANCE_FACTOR)
    assert abs(z_other) > 8


def test_truth_table_falls_with_price_and_covers_every_item_day(small_world: Settings) -> None:
    truth = pd.read_parquet(small_world.truth_demand_path)
    assert len(truth) == SMALL_WORLD.items * SMALL_WORLD.days * TRUTH_PRICE_MULTIPLIERS.size
    assert (truth["expected_units"] >= 0).all()
    curves = truth.pivot_table(index=["item_id", "date"], columns="price_multiplier", values="expected_units")
    assert (np.diff(curves.to_numpy(), axis=1) <= 1e-12).all(), "demand must never rise with price"
    assert (curves.to_numpy()[:, 0] > curves.to_numpy()[:, -1]).mean() > 0.5


def test_perishables_expire_and_seasonal_stock_is_never_replenished(small_world: Settings) -> None:
    items = pd.read_parquet(small_world.items_path)
    inventory = pd.read_parquet(small_world.inventory_path).merge(items, on="item_id")
    fresh = inventory[items.set_index("item_id").loc[inventory["item_id"], "shelf_life_days"].notna().to_numpy()]
    assert len(fresh) and fresh["written_off"].sum() > 0, "some fresh food should expire unsold"
    # A batch arrives only on the first day of each shelf life, and what is written off is what was left.
    day = (pd.to_datetime(fresh["date"]) - pd.Timestamp(SMALL_WORLD.start)).dt.days
    assert (fresh.loc[day % fresh["shelf_life_days"] != 0, "received"] == 0).all()
    assert (fresh["written_off"] <= fresh["stock"]).all()
    seasonal = inventory[inventory["sell_by"].notna()]
    assert len(seasonal) and (seasonal.loc[seasonal["date"] > seasonal["date"].min(), "received"] == 0).all()
    after = seasonal[pd.to_datetime(seasonal["date"]) > pd.to_datetime(seasonal["sell_by"])]
    assert (after["stock"] == 0).all()
    regular = inventory[inventory["shelf_life_days"].isna() & inventory["sell_by"].isna()]
    assert (regular["written_off"] == 0).all()


def test_the_truth_kernels_leave_torch_one_openmp_runtime(day_start: Simulator) -> None:
    """numba's OpenMP layer would load a second libgomp beside torch's, and torch's threaded ops in the
    same process then run tens of times slower; the kernels run on numba's own pool instead."""
    _truth(day_start, 1.0)
    assert numba.threading_layer() == "workqueue"
