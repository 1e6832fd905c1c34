"""The fluid (deterministic) LP bound: an upper bound on what any pricing policy can earn, to sanity-check the DP.

Replace random demand by its mean and let a period be split between prices: x[t, j] >= 0 is the fraction of
period t spent at ladder price j, with sum_j x[t, j] <= 1, and cumulative expected sales may not exceed the
stock plus the arrivals so far::

    max  sum_{t,j} x[t, j] lam[t, j] (r_j - v)  +  v (S0 + sum_t a_t)
    s.t. sum_j x[t, j] <= 1                                  for every t
         sum_{u <= t} sum_j lam[u, j] x[u, j] <= S0 + sum_{u <= t} a_u   for every t

Why it bounds the DP (for any sign of the salvage value v, with or without expiry): every unit the SKU ever has
(S0 + sum a) is either sold or ends up at the salvage value (written off at an expiry or left at the end), so
the DP's value is E[sum_t (r_{j_t} - v) sales_t] + v (S0 + sum a). Let y[t, j] = E[sales_t; price j in t] and
x[t, j] = y[t, j] / lam[t, j]: as sales never exceed demand, x[t, j] <= P(price j in t), so sum_j x[t, j] <= 1;
cumulative sales never exceed stock plus arrivals on any path, so neither do their expectations. That x is
feasible and earns exactly the DP's value, so the LP optimum is at least the DP's value. Rules: the LP uses the
static ``allowed`` prices and drops ``max_change`` / ``markdown_only`` (fewer constraints, still a bound).

Two solvers of the same LP: HiGHS through scipy (any arrivals; SKUs stacked block-diagonally, a chunk per LP),
and, for SKUs without arrivals (one capacity constraint), the exact minimum of its one-dimensional Lagrangian
dual g(mu) = mu S0 + sum_t max(0, max_j lam[t, j] (w_j - mu)), convex and piecewise linear in mu, found by
bisection on its subgradient for all SKUs at once. Any g(mu) with mu >= 0 is itself an upper bound (weak
duality), so the dual answer is a bound even before it has converged.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from pricing.optimiser.problem import PricingProblem

# SKUs per HiGHS LP: big enough to amortise the call, small enough that presolve stays fast.
_HIGHS_CHUNK = 50
# Bisection steps on mu: 2^-80 of the bracket is below float resolution.
_BISECTIONS = 80


def _lp_terms(problem: PricingProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, T, J) LP objective per unit of x, (n, T, J) expected units per unit of x (0 where not allowed), (n,)
    the constant v (S0 + sum a)."""
    allowed = problem.allowed[:, None, :]
    units = np.where(allowed, problem.demand, 0.0)
    gain = units * (problem.reward - problem.salvage[:, None])[:, None, :]
    return gain, units, problem.salvage * problem.supply


def fluid_bound_highs(problem: PricingProblem, rows: np.ndarray | None = None, chunk: int = _HIGHS_CHUNK) -> np.ndarray:
    """The fluid LP for the SKUs in ``rows`` (default all), solved by HiGHS, ``chunk`` SKUs per LP.

    Only the cumulative constraints of periods followed by an arrival (and the last) are kept: caps never
    decrease, so with nonnegative sales the others are implied by the next kept one.
    """
    rows = np.arange(problem.shape[0]) if rows is None else np.asarray(rows)
    gain, units, base = _lp_terms(problem)
    _, T, J = problem.shape
    cap = problem.stock[:, None] + np.cumsum(problem.arrivals, axis=1)  # (n, T)
    out = np.empty(rows.size)
    for start in range(0, rows.size, chunk):
        block = rows[start : start + chunk]
        m = block.size
        live = np.broadcast_to(problem.allowed[block][:, None, :], (m, T, J))
        sku, t, j = np.nonzero(live)  # one LP variable per allowed (SKU, period, price)
        var = np.arange(sku.size)
        # (m T, vars): row (SKU, t) sums x over the prices of period t; with units as weights, expected sales.
        per_period = sparse.csr_array((np.ones(var.size), (sku * T + t, var)), shape=(m * T, var.size))
        sales = sparse.csr_array((units[block][sku, t, j], (sku * T + t, var)), shape=(m * T, var.size))
        # Cumulative rows: one per kept (SKU, period k), summing that SKU's sales of periods u <= k.
        keep = np.ones((m, T), bool)
        keep[:, :-1] = problem.arrivals[block][:, 1:] > 0
        ks, kt = np.nonzero(keep)
        r, u = np.nonzero(np.arange(T)[None, :] <= kt[:, None])
        upto = sparse.csr_array((np.ones(r.size), (r, ks[r] * T + u)), shape=(ks.size, m * T))
        a_ub = sparse.vstack([per_period, upto @ sales], format="csr")
        b_ub = np.concatenate([np.ones(m * T), cap[block][ks, kt].astype(float)])
        c = gain[block][sku, t, j]
        res = linprog(-c, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
        if res.status != 0:
            raise RuntimeError(
                f"HiGHS could not solve the fluid LP for items {problem.item_ids[block[:3]]}: {res.message}"
            )
        out[start : start + m] = np.bincount(sku, weights=c * res.x, minlength=m) + base[block]
    return out


def fluid_bound_dual(problem: PricingProblem, rows: np.ndarray | None = None) -> np.ndarray:
    """The fluid LP for SKUs without arrivals, by minimising its Lagrangian dual in the one capacity multiplier.

    g(mu) = mu S0 + sum_t max(0, max_j lam[t, j] (w_j - mu)) with w = reward - salvage; its slope at mu is
    S0 - (expected units of the prices each period picks at mu), non-decreasing, so bisection finds where it
    crosses zero, and the minimum is the lower of g at the two ends of the final bracket.
    """
    rows = np.arange(problem.shape[0]) if rows is None else np.asarray(rows)
    if np.any(problem.arrivals[rows] > 0):
        raise ValueError("fluid_bound_dual: SKUs with arrivals have one capacity constraint per arrival; use HiGHS")
    gain, units, base = _lp_terms(problem)
    gain, units, base = gain[rows], units[rows], base[rows]
    stock = problem.stock[rows].astype(float)
    m = rows.size
    idx_n, idx_t = np.arange(m)[:, None], np.arange(units.shape[1])[None, :]

    def dual(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """g(mu) and the units sold at mu (the negative slope of the sum), per SKU."""
        reduced = gain - units * mu[:, None, None]  # (m, T, J); 0 for prices not allowed
        pick = reduced.argmax(axis=2)
        best = reduced[idx_n, idx_t, pick]
        sells = best > 0
        return mu * stock + np.where(sells, best, 0.0).sum(axis=1), np.where(sells, units[idx_n, idx_t, pick], 0.0).sum(
            axis=1
        )

    lo = np.zeros(m)
    hi = np.maximum(np.where(units > 0, gain / np.where(units > 0, units, 1.0), 0.0).max(axis=(1, 2)), 0.0)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        _, sold = dual(mid)
        too_low = sold > stock  # g still falling at mid: the minimum lies to the right
        lo = np.where(too_low, mid, lo)
        hi = np.where(too_low, hi, mid)
    return np.minimum(dual(lo)[0], dual(hi)[0]) + base


def fluid_bound(problem: PricingProblem, method: Literal["auto", "highs", "dual"] = "auto") -> np.ndarray:
    """(n,) fluid LP upper bound on each SKU's optimal expected value (see the module docstring for why).

    ``auto`` uses the exact dual for SKUs without arrivals and HiGHS for the others; ``highs`` uses HiGHS for
    all (the reference); ``dual`` requires that no SKU has arrivals.
    """
    if method == "highs":
        return fluid_bound_highs(problem)
    if method == "dual":
        return fluid_bound_dual(problem)
    out = np.empty(problem.shape[0])
    arriving = problem.arrivals.sum(axis=1) > 0
    if (~arriving).any():
        out[~arriving] = fluid_bound_dual(problem, np.flatnonzero(~arriving))
    if arriving.any():
        out[arriving] = fluid_bound_highs(problem, np.flatnonzero(arriving))
    return out
