"""An independent audit that a solved policy never breaks a pricing rule.

It re-derives every rule from the `PricingRules` objects themselves (not from the masks the
optimiser used), checks every reachable entry of the policy tables against the static rules,
and plays random demand paths through the policy to check the stateful ones (markdown-only,
maximum change per period, starting from today's price). The benchmark reports its count.
"""

from __future__ import annotations

import numpy as np

from pricing.optimiser.problem import PricingProblem
from pricing.optimiser.rules import PricingRules
from pricing.optimiser.solve import PricingSolution, policy_index

_EPS = 1e-6


def _static_ok(price: np.ndarray, cost: float, rules: PricingRules) -> np.ndarray:
    ok = np.ones(price.shape, dtype=bool)
    if rules.floor is not None:
        ok &= price >= rules.floor - _EPS
    if rules.ceiling is not None:
        ok &= price <= rules.ceiling + _EPS
    if rules.min_margin is not None and not rules.allow_clearance:
        ok &= price >= cost * (1 + rules.min_margin) - _EPS
    if rules.endings is not None:
        cents = np.round(price * 100).astype(np.int64) % 100
        allowed = {round(e * 100) % 100 for e in rules.endings}
        ok &= np.isin(cents, list(allowed))
    return ok


def _step_ok(price: np.ndarray, previous: np.ndarray, rules: PricingRules) -> np.ndarray:
    ok = np.ones(price.shape, dtype=bool)
    if rules.markdown_only:
        ok &= price <= previous + _EPS
    if rules.max_change is not None:
        ok &= np.abs(price - previous) <= rules.max_change * previous + _EPS
    return ok


def count_violations(
    problem: PricingProblem,
    solution: PricingSolution,
    rules: list[PricingRules],
    rng: np.random.Generator,
    paths: int = 20,
) -> tuple[int, int]:
    """(prices checked, prices that break a rule) over the policy tables and `paths` simulated paths per SKU."""
    n, horizon, _ = problem.shape
    checked = violations = 0
    for i in range(n):
        tables = [solution.policy[i]]
        if solution.policy_by_prev is not None and solution.stateful_row[i] >= 0:
            tables.append(solution.policy_by_prev[solution.stateful_row[i]].reshape(horizon, -1))
        for table in tables:
            index = table[table >= 0].astype(np.int64)
            ok = _static_ok(problem.prices[i, index], problem.cost[i], rules[i])
            checked += ok.size
            violations += int((~ok).sum())
    rows = np.arange(n)
    for _ in range(paths):
        stock = problem.stock.copy()
        prev_index = np.full(n, -1)
        previous = problem.current_price.copy()
        for t in range(horizon):
            stock = stock + problem.arrivals[:, t]
            index = policy_index(solution, t, stock, prev_index)
            price = problem.prices[rows, index]
            for i in range(n):
                ok = _step_ok(price[i : i + 1], previous[i : i + 1], rules[i]) & _static_ok(
                    price[i : i + 1], problem.cost[i], rules[i]
                )
                checked += 1
                violations += int(not ok[0])
            sold = np.minimum(rng.poisson(problem.demand[rows, t, index]), stock)
            stock = np.where(problem.expire[:, t], 0, stock - sold)
            prev_index, previous = index, price
    return checked, violations
