"""Backtest pricing policies against the world's true demand, with common random numbers across policies.

Every policy plays the same scenario forward period by period: it sets a price per SKU from
what it knows (stock now, the previous price, its own forecast), demand is drawn from the true
expected units at that price, units sold are min(demand, stock), and batches expire as
scheduled. Demand in period t of seed k is the Poisson quantile of one uniform U[k, n, t] shared
by all policies, so differences between policies are not sampling noise of the draws.

Policies:
- current: today's price held for the whole horizon;
- best_static: the single ladder price per SKU with the best expected value under the true demand
  (the "best fixed price in hindsight" of the dynamic-pricing literature: it knows the demand curve,
  not the draws);
- clairvoyant_static: the single ladder price per SKU *and seed* with the best realised value, i.e. it
  also knows the draws; no policy can have this, reported to show how much of a gap is luck;
- oracle: the DP solved with the true demand (the best any non-clairvoyant policy can do in expectation);
- learned: the DP solved with the learned demand model, applied closed-loop: each period it prices
  from the stock actually left, which is the same as re-optimising every period with that forecast;
- markdown: a practitioner's rule: cut the price 10% when the stock on hand exceeds what the forecast
  says will sell before the batch expires or the horizon ends; never raise.

"Value" below is what a policy earns: sales revenue plus the salvage value of what is left or
written off (regular leftovers at cost, expired fresh food at 0, seasonal leftovers at the outlet price).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from pricing.backtest.scenario import Scenario
from pricing.optimiser.solve import PricingSolution, solve

POLICIES: tuple[str, ...] = ("current", "best_static", "clairvoyant_static", "oracle", "learned", "markdown")
MARKDOWN_CUT = 0.10
# Choose ladder indices (K, n) in period t from the stock on hand (K, n) and the previous indices (K, n).
Chooser = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Outcome:
    """What one policy realised, per seed and SKU (K, n), plus its price and stock paths (K, n, T)."""

    revenue: np.ndarray
    salvage: np.ndarray
    units: np.ndarray
    waste: np.ndarray
    stockouts: np.ndarray  # periods in which demand exceeded the stock on hand
    price_changes: np.ndarray
    prices: np.ndarray
    stock: np.ndarray
    cost: np.ndarray = field(repr=False)

    @property
    def value(self) -> np.ndarray:
        return self.revenue + self.salvage

    @property
    def margin(self) -> np.ndarray:
        return self.revenue - self.cost * self.units


@dataclass
class BacktestResult:
    scenario: Scenario
    outcomes: dict[str, Outcome]
    solve_seconds: dict[str, float]
    seeds: int


def demand_uniforms(scenario: Scenario, seeds: int, seed: int = 0) -> np.ndarray:
    """(K, n, T) common random numbers: seed k's demand draws, shared by every policy."""
    n, horizon = scenario.item_ids.size, scenario.horizon
    return np.random.default_rng([seed, 7]).random((seeds, n, horizon))


def play(scenario: Scenario, choose: Chooser, uniforms: np.ndarray) -> Outcome:
    """Play a policy through the horizon on every seed at once."""
    seeds, n, horizon = uniforms.shape
    rows = np.arange(n)[None, :]
    stock = np.broadcast_to(scenario.stock, (seeds, n)).astype(np.int64).copy()
    prev = np.broadcast_to(scenario.current_index, (seeds, n)).copy()
    totals = {name: np.zeros((seeds, n)) for name in ("revenue", "salvage", "units", "waste", "stockouts", "changes")}
    prices = np.zeros((seeds, n, horizon))
    stocks = np.zeros((seeds, n, horizon), dtype=np.int64)
    for t in range(horizon):
        stock += scenario.arrivals[:, t]
        index = choose(t, stock, prev)
        price = scenario.ladder[rows, index]
        mean = scenario.truth[rows, t, index]
        demand = np.where(mean > 0, stats.poisson.ppf(uniforms[:, :, t], np.maximum(mean, 1e-300)), 0.0)
        sold = np.minimum(demand, stock)
        totals["revenue"] += price * sold
        totals["units"] += sold
        totals["stockouts"] += demand > stock
        totals["changes"] += (index != prev) & (t > 0)
        prices[:, :, t], stocks[:, :, t] = price, stock
        stock = stock - sold.astype(np.int64)
        ends = scenario.expire[:, t] | (t == horizon - 1)
        left = np.where(ends, stock, 0)
        totals["salvage"] += left * scenario.salvage
        # Expired batches and season ends are waste; a regular item's leftover is carried over, not wasted.
        totals["waste"] += np.where(scenario.expire[:, t] | (scenario.kind != "regular") & ends, left, 0)
        stock = stock - left
        prev = index
    return Outcome(
        revenue=totals["revenue"],
        salvage=totals["salvage"],
        units=totals["units"],
        waste=totals["waste"],
        stockouts=totals["stockouts"],
        price_changes=totals["changes"],
        prices=prices,
        stock=stocks,
        cost=np.broadcast_to(scenario.cost, (seeds, n)),
    )


def fixed(index: np.ndarray) -> Chooser:
    """Hold one ladder index per SKU."""
    return lambda t, stock, prev: np.broadcast_to(index, stock.shape)


def closed_loop(solution: PricingSolution) -> Chooser:
    """Look the DP policy up at the stock actually on hand (state after this period's deliveries)."""
    rows = np.arange(solution.item_ids.size)[None, :]

    def choose(t: int, stock: np.ndarray, prev: np.ndarray) -> np.ndarray:
        s = np.clip(stock, 0, solution.reach[:, t])
        return solution.policy[rows, t, s].astype(np.int64)

    return choose


def markdown_rule(scenario: Scenario, forecast: np.ndarray, cut: float = MARKDOWN_CUT) -> Chooser:
    """Cut `cut` off the price when stock exceeds the forecast sales until the batch/season/horizon ends."""
    n, horizon = scenario.item_ids.size, scenario.horizon
    rows = np.arange(n)[None, :]
    # Period in which what is on hand at t stops being sellable: the next expiry, else the horizon's end.
    last = np.full((n, horizon), horizon - 1)
    for t in range(horizon - 2, -1, -1):
        last[:, t] = np.where(scenario.expire[:, t], t, last[:, t + 1])
    cumulative = np.concatenate([np.zeros((n, 1, forecast.shape[2])), np.cumsum(forecast, axis=1)], axis=1)
    lower = np.array([[np.searchsorted(row, (1 - cut) * p, side="right") - 1 for p in row] for row in scenario.ladder])

    def choose(t: int, stock: np.ndarray, prev: np.ndarray) -> np.ndarray:
        end = last[:, t][None, :]
        expected = cumulative[rows, end + 1, prev] - cumulative[rows, t, prev]
        cut_to = np.maximum(lower[rows, prev], 0)
        return np.where(stock > expected, np.minimum(cut_to, prev), prev)

    return choose


def run_backtest(scenario: Scenario, forecast: np.ndarray, seeds: int, seed: int = 0) -> BacktestResult:
    """Play every policy on the same draws; `forecast` (n, T, J) is the learned model's expected units."""
    uniforms = demand_uniforms(scenario, seeds, seed)
    solve_seconds: dict[str, float] = {}
    plans: dict[str, PricingSolution] = {}
    for name, demand in (("oracle", scenario.truth), ("learned", forecast)):
        started = time.perf_counter()
        plans[name] = solve(scenario.problem(demand))
        solve_seconds[name] = time.perf_counter() - started
    outcomes = {
        "current": play(scenario, fixed(scenario.current_index), uniforms),
        "oracle": play(scenario, closed_loop(plans["oracle"]), uniforms),
        "learned": play(scenario, closed_loop(plans["learned"]), uniforms),
        "markdown": play(scenario, markdown_rule(scenario, forecast), uniforms),
    }
    started = time.perf_counter()
    outcomes["best_static"] = play(scenario, fixed(best_static_index(scenario)), uniforms)
    solve_seconds["best_static"] = time.perf_counter() - started
    outcomes["clairvoyant_static"] = clairvoyant_static(scenario, uniforms)
    return BacktestResult(scenario, {p: outcomes[p] for p in POLICIES}, solve_seconds, seeds)


def best_static_index(scenario: Scenario) -> np.ndarray:
    """(n,) the ladder price whose exact expected value, held all horizon under the true demand, is highest."""
    n, _, prices = scenario.truth.shape
    values = np.empty((n, prices))
    for j in range(prices):
        only = np.zeros((n, prices), dtype=bool)
        only[:, j] = True
        values[:, j] = solve(scenario.problem(scenario.truth, allowed=only)).value
    return values.argmax(axis=1)


def clairvoyant_static(scenario: Scenario, uniforms: np.ndarray) -> Outcome:
    """The single ladder price per SKU and seed with the best realised value: hindsight no policy has."""
    best: Outcome | None = None
    for j in range(scenario.ladder.shape[1]):
        outcome = play(scenario, fixed(np.full(scenario.item_ids.size, j)), uniforms)
        if best is None:
            best = outcome
            continue
        better = outcome.value > best.value
        for name in ("revenue", "salvage", "units", "waste", "stockouts", "price_changes"):
            setattr(best, name, np.where(better, getattr(outcome, name), getattr(best, name)))
        best.prices = np.where(better[..., None], outcome.prices, best.prices)
        best.stock = np.where(better[..., None], outcome.stock, best.stock)
    assert best is not None
    return best
