"""The pricing DP against what it must equal: brute-force expectimax, the plain reference DP, direct sums.

Also the properties an optimal policy has (monotone in stock and time on a textbook demand curve), the fluid LP
bound above it, and the expected-path and hold-price figures against independent computations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import poisson

from pricing.optimiser.fluid import fluid_bound, fluid_bound_dual, fluid_bound_highs
from pricing.optimiser.kernels import _convolve_into
from pricing.optimiser.ladder import price_ladder
from pricing.optimiser.problem import PricingProblem
from pricing.optimiser.reference import solve_reference
from pricing.optimiser.rules import RuleConflict
from pricing.optimiser.solve import policy_index, solve

# --------------------------------------------------------------------------------------------------------------
# Problem factories
# --------------------------------------------------------------------------------------------------------------


def random_problem(
    seed: int,
    n: int = 6,
    T: int = 5,
    J: int = 5,
    max_stock: int = 12,
    objective: str = "revenue",
    arrivals: bool = False,
    expiry: bool = False,
    stateful: bool = False,
    pad: bool = False,
    extreme_rates: bool = False,
) -> PricingProblem:
    """A random problem with demand falling in price; every option on a subset of SKUs so mixes are exercised."""
    rng = np.random.default_rng(seed)
    current = np.round(rng.uniform(5, 30, n), 2)
    multipliers = np.sort(np.append(rng.uniform(0.5, 1.3, J - 1), 1.0))  # today's price is on the ladder
    prices = price_ladder(current, multipliers)
    today = np.argmin(np.abs(prices - current[:, None]), axis=1)
    if pad:  # knock out the top rungs of some SKUs (never today's price): NaN padding
        width = rng.integers(today + 1, prices.shape[1] + 1)
        prices = np.where(np.arange(prices.shape[1])[None, :] < width[:, None], prices, np.nan)
    J = prices.shape[1]
    rel = prices / current[:, None]
    base = rng.uniform(0.3, 5, (n, T, 1))
    demand = base * np.exp(-rng.uniform(0.5, 3, (n, 1, 1)) * (rel[:, None, :] - 1))
    if extreme_rates:  # no demand at all, and demand far above the stock (the Poisson window starts past it)
        demand[0] = 0.0
        demand[1] *= 300.0
    stock = rng.integers(0, max_stock + 1, n)
    cost = current * rng.uniform(0.3, 0.9, n)
    salvage = current * rng.uniform(-0.3, 0.4, n)
    arr = rng.integers(0, 4, (n, T)) * (rng.random((n, T)) < 0.4) if arrivals else None
    exp = (rng.random((n, T)) < 0.25) if expiry else None
    max_change = np.where(rng.random(n) < 0.5, rng.uniform(0.1, 0.4, n), np.nan) if stateful else None
    markdown = (rng.random(n) < 0.5) if stateful else None
    allowed = rng.random((n, J)) < 0.8
    allowed[np.arange(n), today] = True  # so the stateful rules always have a price to start from
    return PricingProblem(
        [f"i{k}" for k in range(n)], prices, demand, stock, cost, salvage, current,
        arrivals=arr, expire=exp, objective=objective, allowed=allowed, max_change=max_change, markdown_only=markdown,
    )  # fmt: skip


def brute_force_value(problem: PricingProblem, i: int) -> float:
    """Expectimax over the whole decision tree of SKU i: every sales outcome, every price, at every node.

    Written from the problem statement alone: arrivals at the start of a period, sales min(D, stock), expiry
    writes the leftover off at the salvage value, the last leftover is worth the salvage value, and the rules
    compare a price with the previous period's price (today's price in period 0). No memoisation.
    """
    _, T, J = problem.shape
    v = problem.salvage[i]
    unit = problem.prices[i] - (problem.cost[i] if problem.objective == "margin" else 0.0)
    max_change, markdown = problem.max_change[i], problem.markdown_only[i]

    def allowed(j: int, prev: float) -> bool:
        p = problem.prices[i, j]
        if not (np.isfinite(p) and problem.allowed[i, j]):
            return False
        if markdown and p > prev + 1e-9:
            return False
        return not (np.isfinite(max_change) and abs(p - prev) > max_change * prev + 1e-9)

    def value(t: int, carried: int, prev: float) -> float:
        if t == T:
            return v * carried
        s = carried + int(problem.arrivals[i, t])
        best = -math.inf
        for j in range(J):
            if not allowed(j, prev):
                continue
            lam = problem.demand[i, t, j]
            pmf = [math.exp(-lam) * lam**d / math.factorial(d) for d in range(s)]
            total = 0.0
            for sold in range(s + 1):  # sold == s: demand of s or more
                prob = pmf[sold] if sold < s else 1.0 - sum(pmf)
                left = s - sold
                after = (
                    v * left + value(t + 1, 0, problem.prices[i, j])
                    if problem.expire[i, t]
                    else value(t + 1, left, problem.prices[i, j])
                )
                total += prob * (unit[j] * sold + after)
            best = max(best, total)
        return best

    return value(0, int(problem.stock[i]), problem.current_price[i])


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


# --------------------------------------------------------------------------------------------------------------
# 1. Brute force, 2. reference DP
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"stateful": True},
        {"arrivals": True, "expiry": True},
        {"arrivals": True, "expiry": True, "stateful": True, "objective": "margin"},
    ],
    ids=["plain", "rules", "arrivals-expiry", "everything"],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_dp_equals_brute_force_expectimax(options: dict, seed: int) -> None:
    problem = random_problem(seed, n=5, T=3, J=3, max_stock=4, **options)
    solution = solve(problem)
    brute = np.array([brute_force_value(problem, i) for i in range(problem.shape[0])])
    assert rel_diff(solution.value, brute) < 1e-9
    assert rel_diff(solve_reference(problem).value, brute) < 1e-9


@pytest.mark.parametrize(
    "options",
    [
        {"pad": True, "extreme_rates": True},
        {"objective": "margin", "arrivals": True, "pad": True},
        {"stateful": True, "expiry": True, "arrivals": True},
        {"stateful": True, "objective": "margin", "pad": True, "extreme_rates": True},
    ],
    ids=["padded-extreme", "margin-arrivals", "rules-expiry", "rules-margin-padded"],
)
def test_fast_solve_equals_reference_dp(options: dict) -> None:
    problem = random_problem(11, n=6, T=6, J=6, max_stock=30, **options)
    fast, ref = solve(problem), solve_reference(problem)
    assert rel_diff(fast.value, ref.value) < 1e-9
    finite = np.isfinite(ref.q_now)
    np.testing.assert_array_equal(np.isfinite(fast.value_by_price), finite)
    assert rel_diff(fast.value_by_price[finite], ref.q_now[finite]) < 1e-9
    n, T, _ = problem.shape
    reach = problem.reach
    stateless = np.flatnonzero(~problem.stateful)
    for i in stateless:
        for t in range(T):
            s = np.arange(reach[i, t] + 1)
            np.testing.assert_array_equal(fast.policy[i, t, s], ref.policy_by_prev[i, t, s, 0])
    for i in np.flatnonzero(problem.stateful):
        k = fast.stateful_row[i]
        np.testing.assert_array_equal(fast.policy[i, 0, : reach[i, 0] + 1], ref.policy_now[i, : reach[i, 0] + 1])
        for t in range(1, T):
            s = np.arange(reach[i, t] + 1)
            np.testing.assert_array_equal(fast.policy_by_prev[k, t, s], ref.policy_by_prev[i, t, s])
    np.testing.assert_allclose(fast.price_now, problem.prices[np.arange(n), ref.policy_now[np.arange(n), reach[:, 0]]])


def test_convolution_kernel_equals_the_double_sum() -> None:
    """The hot loop of both passes (unrolled, sliced, with a ragged head) against the sum it stands for."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        size = int(rng.integers(1, 40))
        lo = int(rng.integers(0, 5))
        hi = int(rng.integers(lo, lo + size + 3))
        a, b, c = int(rng.integers(0, 2)), int(rng.integers(0, size + 1)), int(rng.integers(0, size))
        pmf = rng.random(hi + 1)
        src = np.zeros(size + 10)
        src[: c + 1] = rng.random(c + 1)
        dst = np.zeros(size + 10)
        _convolve_into(pmf, lo, hi, src, dst, a, b, c)
        expected = np.zeros_like(dst)
        for k in range(b + 1):
            for d in range(lo, hi + 1):
                if a <= k - d <= c:
                    expected[k] += pmf[d] * src[k - d]
        np.testing.assert_allclose(dst, expected, rtol=1e-12, atol=1e-14)


def test_expected_path_value_matches_the_dp_value() -> None:
    """Forward propagation of the state distribution must earn exactly what the backward pass promised."""
    for options in ({}, {"stateful": True, "arrivals": True, "expiry": True, "objective": "margin"}):
        problem = random_problem(5, n=8, T=7, max_stock=40, **options)
        solution = solve(problem)
        assert rel_diff(solution.path.value, solution.value) < 1e-10
        supply = problem.supply
        np.testing.assert_allclose(solution.units + solution.waste, supply, rtol=1e-10, atol=1e-9)
        assert np.all(solution.expected_stock[:, 0] == problem.reach[:, 0])


def test_progress_reports_every_period_of_every_pass() -> None:
    problem = random_problem(3, n=3, T=4)
    calls: list[tuple[int, int]] = []
    solve(problem, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(k, 12) for k in range(1, 13)]


# --------------------------------------------------------------------------------------------------------------
# 4. Structure
# --------------------------------------------------------------------------------------------------------------


def test_optimal_price_falls_with_stock_and_rises_with_time_to_go() -> None:
    """Stationary demand lam = a exp(-b p), no rules, no salvage: the textbook monotone policy."""
    rng = np.random.default_rng(4)
    n, T = 12, 10
    current = rng.uniform(8, 20, n)
    prices = price_ladder(current, np.linspace(0.5, 1.5, 11))
    a, b = rng.uniform(2, 6, n), rng.uniform(0.5, 2, n) / current
    demand = np.repeat((a[:, None] * np.exp(-b[:, None] * (prices - current[:, None])))[:, None, :], T, axis=1)
    stock = rng.integers(10, 60, n)
    problem = PricingProblem(np.arange(n), prices, demand, stock, np.zeros(n), np.zeros(n), current)
    solution = solve(problem)
    price = np.take_along_axis(prices[:, None, :], solution.policy.astype(np.int64).clip(0), axis=2)
    for i in range(n):
        table = price[i, :, 1 : stock[i] + 1]  # stock 0: every price earns the same, the choice is arbitrary
        assert np.all(np.diff(table, axis=1) <= 1e-12), f"price rises with stock for SKU {i}"
        assert np.all(np.diff(table, axis=0) <= 1e-12), f"price rises as time runs out for SKU {i}"


# --------------------------------------------------------------------------------------------------------------
# 5. Fluid bound
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_fluid_bound_is_never_below_the_dp_value(seed: int) -> None:
    options = [{}, {"arrivals": True}, {"expiry": True, "objective": "margin"}, {"stateful": True, "pad": True}]
    problem = random_problem(100 + seed, n=10, T=6, max_stock=25, **options[seed % 4])
    value = solve(problem).value
    bound = fluid_bound(problem)
    assert np.all(bound >= value - 1e-9 * np.maximum(1.0, np.abs(value)))


def test_fluid_dual_equals_highs() -> None:
    for seed in range(5):
        problem = random_problem(200 + seed, n=40, T=8, J=7, max_stock=60, pad=True, objective="margin")
        np.testing.assert_allclose(fluid_bound_dual(problem), fluid_bound_highs(problem), rtol=1e-7, atol=1e-7)


def test_fluid_bound_is_tight_when_stock_is_plentiful() -> None:
    """With far more stock than demand every period sells at its best fluid price: the DP reaches the bound."""
    problem = random_problem(7, n=5, T=4, max_stock=5)
    problem = PricingProblem(
        problem.item_ids, problem.prices, problem.demand * 0.01, np.full(5, 50), problem.cost, np.zeros(5),
        problem.current_price, allowed=problem.allowed,
    )  # fmt: skip
    np.testing.assert_allclose(fluid_bound(problem), solve(problem).value, rtol=1e-9)


# --------------------------------------------------------------------------------------------------------------
# 6. Hold today's price
# --------------------------------------------------------------------------------------------------------------


def test_hold_figures_equal_the_closed_form_without_arrivals() -> None:
    """Holding one price, total demand over the horizon is Poisson(sum_t lam_t), and sales are min(that, S0)."""
    problem = random_problem(8, n=7, T=6, max_stock=25, objective="margin")
    solution = solve(problem)
    rows = np.arange(problem.shape[0])
    h = problem.hold_index()
    total = problem.demand[rows, :, h].sum(axis=1)
    sold = np.array([poisson.sf(np.arange(s), mu).sum() for s, mu in zip(problem.stock, total, strict=True)])
    price = problem.prices[rows, h]
    np.testing.assert_allclose(solution.hold_units, sold, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(solution.hold_revenue, price * sold, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(solution.hold_margin, (price - problem.cost) * sold, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(solution.hold_waste, problem.stock - sold, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(solution.hold.price, np.repeat(price[:, None], 6, axis=1))
    expect_value = (price - problem.cost) * sold + problem.salvage * (problem.stock - sold)
    np.testing.assert_allclose(solution.hold_value, expect_value, rtol=1e-10, atol=1e-9)
    assert np.all(solution.hold_value <= solution.value + 1e-9)  # the optimum can always hold the price


def test_hold_figures_equal_a_dense_markov_chain_with_arrivals_and_expiry() -> None:
    problem = random_problem(9, n=5, T=6, max_stock=15, arrivals=True, expiry=True)
    solution = solve(problem)
    _, T, _ = problem.shape
    size = problem.max_stock + 1
    for i in range(problem.shape[0]):
        h = problem.hold_index()[i]
        dist = np.zeros(size)
        dist[problem.stock[i]] = 1.0
        units = waste = 0.0
        for t in range(T):
            dist = np.roll(dist, problem.arrivals[i, t])  # stock never exceeds the supply, so nothing wraps
            after = np.zeros(size)
            for s in np.flatnonzero(dist):
                d = np.arange(s + 1)
                prob = np.append(
                    poisson.pmf(d[:-1], problem.demand[i, t, h]), poisson.sf(s - 1, problem.demand[i, t, h])
                )
                units += dist[s] * (prob * d).sum()
                np.add.at(after, s - d, dist[s] * prob)
            if problem.expire[i, t] or t == T - 1:
                waste += (after * np.arange(size)).sum()
                after = np.eye(size)[0]
            dist = after
        assert solution.hold_units[i] == pytest.approx(units, rel=1e-10)
        assert solution.hold_waste[i] == pytest.approx(waste, rel=1e-10, abs=1e-10)


# --------------------------------------------------------------------------------------------------------------
# Closed loop and validation
# --------------------------------------------------------------------------------------------------------------


def test_policy_applied_closed_loop_earns_the_dp_value_on_average() -> None:
    """Simulating the policy (with the previous price fed back) earns the DP value within Monte Carlo error."""
    problem = random_problem(12, n=4, T=5, max_stock=20, stateful=True, arrivals=True, objective="margin")
    solution = solve(problem)
    rng = np.random.default_rng(0)
    n, T, _ = problem.shape
    paths = 4000
    earned = np.zeros((paths, n))
    unit = problem.reward
    for k in range(paths):
        stock = problem.stock.copy()
        prev = np.full(n, -1)
        for t in range(T):
            stock = stock + problem.arrivals[:, t]
            j = policy_index(solution, t, stock, prev)
            sold = np.minimum(rng.poisson(problem.demand[np.arange(n), t, j]), stock)
            earned[k] += unit[np.arange(n), j] * sold
            stock = stock - sold
            if problem.expire[:, t].any():
                earned[k] += np.where(problem.expire[:, t], problem.salvage * stock, 0.0)
                stock = np.where(problem.expire[:, t], 0, stock)
            prev = j
        earned[k] += problem.salvage * stock
    error = earned.std(axis=0) / math.sqrt(paths)
    # 4 standard errors, plus a little for SKUs whose rare outcomes (std ~ 0 in the sample) carry the difference.
    assert np.all(np.abs(earned.mean(axis=0) - solution.value) < 4 * error + 1e-3 * np.abs(solution.value))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stock": np.array([1, -1])}, "stock"),
        ({"stock": np.array([1.5, 2])}, "stock"),
        ({"demand": np.full((2, 3, 2), np.nan)}, "demand"),
        ({"demand": -np.ones((2, 3, 2))}, "demand"),
        ({"demand": np.ones((2, 2))}, "demand"),
        ({"prices": np.array([[2.0, 1.0], [1.0, 2.0]])}, "prices"),
        ({"prices": np.array([[np.nan, 1.0], [1.0, 2.0]])}, "prices"),
        ({"cost": np.array([1.0, np.nan])}, "cost"),
        ({"salvage": np.array([1.0])}, "salvage"),
        ({"current_price": np.array([0.0, 1.0])}, "current_price"),
        ({"arrivals": -np.ones((2, 3))}, "arrivals"),
        ({"objective": "profit"}, "objective"),
        ({"max_change": np.array([0.0, np.nan])}, "max_change"),
        ({"allowed": np.array([[False, False], [True, True]])}, "allowed"),
    ],
)
def test_problem_validation_names_the_field(change: dict, field: str) -> None:
    base = {
        "item_ids": ["a", "b"], "prices": np.array([[1.0, 2.0], [1.5, 2.5]]), "demand": np.ones((2, 3, 2)),
        "stock": np.array([3, 4]), "cost": np.array([0.5, 0.5]), "salvage": np.array([0.1, -0.1]),
        "current_price": np.array([2.0, 2.5]),
    }  # fmt: skip
    with pytest.raises(ValueError, match=field):
        PricingProblem(**{**base, **change})


def test_stateful_rules_that_leave_no_price_today_raise_rule_conflict() -> None:
    with pytest.raises(RuleConflict, match="max_change"):
        PricingProblem(
            ["a"], np.array([[10.0, 20.0]]), np.ones((1, 2, 2)), np.array([3]), np.array([1.0]), np.array([0.0]),
            np.array([15.0]), max_change=np.array([0.1]),
        )  # fmt: skip
