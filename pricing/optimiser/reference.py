"""The DP written plainly (scipy's pmf, full sums, Python loops): what the tests check `solve` against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pricing.optimiser.problem import PricingProblem


@dataclass(frozen=True)
class ReferenceSolution:
    """What the plain DP returns: values and period-0 action values from today's price, and the policy tables."""

    value: np.ndarray  # (n,)
    q_now: np.ndarray  # (n, J) Q_0(stock, j) for every ladder price (-inf for padding)
    policy_now: np.ndarray  # (n, S+1) period-0 choice after today's price
    policy_by_prev: np.ndarray  # (n, T, S+1, J) choice per previous ladder index (period 0: after today's price)


def solve_reference(problem: PricingProblem) -> ReferenceSolution:
    """The DP written plainly: scipy's Poisson pmf, full sums over d, Python loops. For tests only.

    Every SKU is solved with the previous price as state, whether or not a stateful rule is on (without one the
    transition matrix is just the allowed prices, and the result is the stateless DP).
    """
    from scipy.stats import poisson

    n, T, J = problem.shape
    S = problem.max_stock
    reach = problem.reach
    reward = problem.reward
    moves_all = problem.transitions()
    now_all = problem.allowed_now
    value = np.empty(n)
    q_now = np.full((n, J), -np.inf)
    policy_now = np.full((n, S + 1), -1, np.int64)
    policy = np.full((n, T, S + 1, J), -1, np.int64)
    for i in range(n):
        v = problem.salvage[i]
        w_next = None  # w_next[y, prev]
        for t in range(T - 1, -1, -1):
            R = reach[i, t]
            q = np.full((R + 1, J), -np.inf)
            for j in range(J):
                if not problem.valid[i, j]:
                    continue

                x = np.arange(R + 1)
                if t == T - 1:
                    cont = v * x
                elif problem.expire[i, t]:
                    cont = v * x + w_next[problem.arrivals[i, t + 1], j]
                else:
                    cont = w_next[x + problem.arrivals[i, t + 1], j]
                if not np.all(np.isfinite(cont)):
                    continue  # no price is allowed after price j
                lam = problem.demand[i, t, j]
                for s in range(R + 1):
                    d = np.arange(s)
                    pmf = poisson.pmf(d, lam)
                    tail = poisson.sf(s - 1, lam)  # P(D >= s)
                    q[s, j] = sum(pmf[k] * (reward[i, j] * k + cont[s - k]) for k in range(s)) + tail * (
                        reward[i, j] * s + cont[0]
                    )
            w = np.full((R + 1, J), -np.inf)
            for s in range(R + 1):
                for prev in range(J):
                    options = np.where(moves_all[i, prev], q[s], -np.inf)
                    if np.isfinite(options.max()):
                        w[s, prev] = options.max()
                        policy[i, t, s, prev] = int(np.argmax(options))
            if t == 0:
                s0 = reach[i, 0]
                q_now[i] = q[s0]
                options = np.where(now_all[i][None, :], q, -np.inf)
                policy_now[i, : R + 1] = options.argmax(axis=1)
                policy[i, 0, : R + 1, :] = policy_now[i, : R + 1, None]
                value[i] = options[s0].max()
            w_next = w
    return ReferenceSolution(value=value, q_now=q_now, policy_now=policy_now, policy_by_prev=policy)
