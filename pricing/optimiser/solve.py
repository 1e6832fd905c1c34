"""Solving a pricing problem: the exact DP backward, the expected path forward, and reading the policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pricing.optimiser.kernels import _backward_period, _forward_period
from pricing.optimiser.problem import PricingProblem
from pricing.optimiser.rules import binding_names

Progress = Callable[[int, int], None]

# A period-0 price counts as bound by a rule only if the excluded price is better by more than float noise.
_BIND_RTOL = 1e-12


@dataclass(frozen=True)
class ExpectedPath:
    """Expected figures of a policy from today's stock, by exact forward propagation of the state distribution."""

    price: np.ndarray  # (n, T) expected price charged in each period
    stock: np.ndarray  # (n, T) expected stock on hand at the start of each period, after that period's arrivals
    units: np.ndarray  # (n, T) expected units sold in each period
    revenue: np.ndarray  # (n,) expected sales revenue over the horizon
    margin: np.ndarray  # (n,) expected revenue less unit cost of the units sold
    sold: np.ndarray  # (n,) expected units sold over the horizon
    sell_through: np.ndarray  # (n,) sold / (stock + arrivals)
    waste: np.ndarray  # (n,) expected units written off at expiry or left at the end
    value: np.ndarray  # (n,) the objective (revenue or margin) plus salvage value of the waste


@dataclass(frozen=True)
class PricingSolution:
    """The optimal policy, today's prices and what to expect, next to holding today's price."""

    item_ids: np.ndarray
    value: np.ndarray  # (n,) optimal expected objective incl. salvage, from today's stock
    index_now: np.ndarray  # (n,) ladder index to set now (period 0)
    price_now: np.ndarray  # (n,) price to set now
    binding: np.ndarray  # (n,) str: rules that bound price_now, comma-joined, '' if none
    value_by_price: np.ndarray  # (n, J) expected value of charging ladder price j now, optimally after (-inf: padding)
    policy: np.ndarray  # (n, T, S+1) int8 ladder index per (period, stock after arrivals); -1 above the reach
    policy_by_prev: np.ndarray | None  # (m, T, S+1, J) int8 for the m stateful SKUs, by previous ladder index
    stateful_row: np.ndarray  # (n,) row of a SKU in policy_by_prev, -1 if it has no stateful rule
    reach: np.ndarray  # (n, T) largest stock per period; policy entries above it are -1
    path: ExpectedPath  # following the optimal policy
    hold: ExpectedPath  # holding today's price (the nearest ladder price) for the whole horizon
    hold_index: np.ndarray  # (n,) the ladder index held

    revenue = property(lambda self: self.path.revenue, doc="(n,) expected revenue under the optimal policy")
    margin = property(lambda self: self.path.margin, doc="(n,) expected margin under the optimal policy")
    units = property(lambda self: self.path.sold, doc="(n,) expected units sold under the optimal policy")
    sell_through = property(lambda self: self.path.sell_through, doc="(n,) expected sell-through, optimal policy")
    waste = property(lambda self: self.path.waste, doc="(n,) expected units written off, optimal policy")
    expected_price = property(lambda self: self.path.price, doc="(n, T) expected price per period")
    expected_stock = property(lambda self: self.path.stock, doc="(n, T) expected stock per period")
    expected_units = property(lambda self: self.path.units, doc="(n, T) expected units per period")
    hold_value = property(lambda self: self.hold.value, doc="(n,) expected value holding today's price")
    hold_revenue = property(lambda self: self.hold.revenue, doc="(n,) expected revenue holding today's price")
    hold_margin = property(lambda self: self.hold.margin, doc="(n,) expected margin holding today's price")
    hold_units = property(lambda self: self.hold.sold, doc="(n,) expected units holding today's price")
    hold_sell_through = property(lambda self: self.hold.sell_through, doc="(n,) sell-through holding today's price")
    hold_waste = property(lambda self: self.hold.waste, doc="(n,) expected waste holding today's price")


def _per_period(array: np.ndarray, t: int) -> np.ndarray:
    """array[:, t] as a C-contiguous array, so every kernel call sees the same array layout (one compilation)."""
    return np.ascontiguousarray(array[:, t])


def _backward(
    problem: PricingProblem, rows: np.ndarray, by_price: bool, tick: Callable[[], None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The DP backward over all periods for the SKUs in `rows`, with or without the previous price as state.

    Returns the value from today's stock (m,), period-0 action values of every ladder price (m, J), the policy
    (m, T, S+1) (for stateful SKUs: after today's price in period 0, after previous index 0 later, until
    ``solve`` replaces it), and for stateful SKUs the policy by previous price, period-major (T, m, S+1, J) so
    that each period's kernel writes straight into it.
    """
    _, T, J = problem.shape
    S = problem.max_stock
    m = rows.size
    lam, reward, reach = problem.demand[rows], problem.reward[rows], problem.reach[rows]
    salvage, expire, arrivals = problem.salvage[rows], problem.expire[rows], problem.arrivals[rows]
    allowed, valid, start = problem.allowed[rows], problem.valid[rows], _per_period(reach, 0)
    later = problem.transitions()[rows] if by_price else allowed[:, None, :]  # moves after a ladder price
    now = problem.allowed_now[rows][:, None, :]  # moves after today's price
    K = J if by_price else 1
    w_next, w_out = np.empty((m, S + 1, K)), np.empty((m, S + 1, K))
    policy = np.empty((m, T, S + 1), np.int8)
    by_prev = np.empty((T, m, S + 1, J), np.int8) if by_price else None
    q_now = np.full((m, J), -np.inf)
    no_query = np.full(m, -1, np.int64)
    for t in range(T - 1, -1, -1):
        first, last = t == 0, t == T - 1
        moves = np.ascontiguousarray(now if first else later)
        P = moves.shape[1]
        out = w_out if P == K else np.empty((m, S + 1, P))
        pol = by_prev[t] if (by_prev is not None and P == J) else np.empty((m, S + 1, P), np.int8)
        arrive = np.zeros(m, np.int64) if last else _per_period(arrivals, t + 1)
        # Period 0 evaluates every ladder price (not only allowed ones) so that binding rules can be named.
        _backward_period(
            last, _per_period(lam, t), reward, valid if first else allowed, moves, salvage, _per_period(expire, t),
            arrive, _per_period(reach, t), w_next, out, pol, start if first else no_query, q_now,
        )  # fmt: skip
        policy[:, t] = pol[:, :, 0]
        if by_prev is not None and P != J:
            by_prev[t] = pol  # period 0: one choice per stock, whatever the (non-existent) earlier ladder price
        w_next, w_out = out, w_next
        tick()
    return w_next[np.arange(m), start, 0], q_now, policy, by_prev


def _forward(
    problem: PricingProblem,
    rows: np.ndarray,
    policy_at: Callable[[int], np.ndarray],
    keep_price: bool,
    tick: Callable[[], None],
) -> tuple[np.ndarray, np.ndarray]:
    """Run the forward kernel over all periods for the SKUs in `rows`, from today's stock.

    ``policy_at(t)`` is the (m, S+1, P) int8 policy of period t (P = 1 in period 0, or always without a
    previous-price state); with ``keep_price`` the distribution keeps the price just charged as state. Returns
    the (m, T, 5) per-period statistics and (m, T, P) the probability of each previous-price state per period.
    """
    _, T, J = problem.shape
    S = problem.max_stock
    m = rows.size
    lam, reach, expire, arrivals = (
        problem.demand[rows],
        problem.reach[rows],
        problem.expire[rows],
        problem.arrivals[rows],
    )
    prices = np.nan_to_num(problem.prices[rows])
    K = J if keep_price else 1
    dist = np.zeros((m, S + 1, 1))
    dist[np.arange(m), reach[:, 0], 0] = 1.0
    buffers = (np.empty((m, S + 1, K)), np.empty((m, S + 1, K)))  # ping-pong: fresh pages are slow to touch
    period = np.empty((m, 5))
    state_mass = {1: np.empty((m, 1)), K: np.empty((m, K))}  # by number of previous-price states
    stats = np.zeros((m, T, 5))
    prev_state = np.zeros((m, T, K))
    for t in range(T):
        last = t == T - 1
        flush = _per_period(expire, t) | last
        arrive = np.zeros(m, np.int64) if last else _per_period(arrivals, t + 1)
        out = buffers[t % 2]
        pol = policy_at(t)
        mass = state_mass[pol.shape[2]]
        _forward_period(_per_period(lam, t), prices, pol, dist, _per_period(reach, t), flush, arrive, out, period, mass)
        stats[:, t] = period
        prev_state[:, t, : mass.shape[1]] = mass
        dist = out
        tick()
    return stats, prev_state


def _summarise(problem: PricingProblem, stats: np.ndarray) -> ExpectedPath:
    """ExpectedPath from the per-period (n, T, 5) statistics of the forward kernel."""
    sold = stats[:, :, 2].sum(axis=1)
    revenue = stats[:, :, 3].sum(axis=1)
    margin = revenue - problem.cost * sold
    waste = stats[:, :, 4].sum(axis=1)
    supply = problem.supply
    sell_through = np.divide(sold, supply, out=np.zeros_like(sold), where=supply > 0)
    earned = margin if problem.objective == "margin" else revenue
    return ExpectedPath(
        price=stats[:, :, 0], stock=stats[:, :, 1], units=stats[:, :, 2], revenue=revenue, margin=margin,
        sold=sold, sell_through=sell_through, waste=waste, value=earned + problem.salvage * waste,
    )  # fmt: skip


def solve(problem: PricingProblem, progress: Progress | None = None) -> PricingSolution:
    """Optimal prices for every SKU: exact DP backward, exact expected path forward, and the hold-price baseline.

    SKUs without a stateful rule are solved with stock as the only state, the others with the previous price
    too. ``progress(done, total)`` is called after each period of each pass (backward and optimal path per group
    of SKUs, then the hold path), so a CLI can draw a bar.
    """
    n, T, J = problem.shape
    S = problem.max_stock
    stateful = problem.stateful
    groups = [(rows, by_price) for rows, by_price in ((np.flatnonzero(~stateful), False),
                                                      (np.flatnonzero(stateful), True)) if rows.size]  # fmt: skip
    total, done = T * (2 * len(groups) + 1), [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    value, q_now = np.empty(n), np.full((n, J), -np.inf)
    policy = np.full((n, T, S + 1), -1, np.int8)
    stats = np.zeros((n, T, 5))
    stateful_row = np.full(n, -1, np.int64)
    policy_by_prev = None
    for rows, by_price in groups:
        value[rows], q_now[rows], policy[rows], by_prev = _backward(problem, rows, by_price, tick)
        if by_prev is None:
            stats[rows], _ = _forward(
                problem, rows, lambda t, p=policy[rows]: _per_period(p, t)[..., None], False, tick
            )
            continue
        first = policy[rows, 0][..., None]
        stats[rows], prev_state = _forward(problem, rows, lambda t, b=by_prev, f=first: b[t] if t else f, True, tick)
        # The (n, T, S+1) policy of a stateful SKU shows the choice after its most likely previous price.
        m = rows.size
        for t in range(1, T):
            policy[rows, t] = by_prev[t][np.arange(m), :, prev_state[:, t].argmax(axis=1)]
        stateful_row[rows] = np.arange(m)
        policy_by_prev = np.moveaxis(by_prev, 0, 1)

    index_now = policy[np.arange(n), 0, problem.reach[:, 0]].astype(np.int64)
    q_chosen = q_now[np.arange(n), index_now]
    best = np.argmax(q_now, axis=1)
    clear_gain = q_now[np.arange(n), best] - q_chosen > _BIND_RTOL * np.maximum(1.0, np.abs(q_chosen))
    best = np.where(clear_gain, best, index_now)
    if problem.rule_masks is not None:
        binding = problem.rule_masks.binding(best, index_now)
    else:
        binding = binding_names({"allowed": problem.allowed, **problem.stateful_permits_now()}, best, index_now)

    hold_index = problem.hold_index()
    hold_policy = np.repeat(hold_index.astype(np.int8)[:, None, None], S + 1, axis=1)
    hold_stats, _ = _forward(problem, np.arange(n), lambda t: hold_policy, False, tick)

    return PricingSolution(
        item_ids=problem.item_ids, value=value, index_now=index_now,
        price_now=problem.prices[np.arange(n), index_now], binding=binding, value_by_price=q_now, policy=policy,
        policy_by_prev=policy_by_prev, stateful_row=stateful_row, reach=problem.reach,
        path=_summarise(problem, stats), hold=_summarise(problem, hold_stats), hold_index=hold_index,
    )  # fmt: skip


def policy_index(
    solution: PricingSolution, t: int, stock: np.ndarray, prev_index: np.ndarray | None = None
) -> np.ndarray:
    """(n,) ladder index the policy picks in period t at the given stock (after that period's arrivals).

    Stock above what the plan thought reachable is clipped to the reach. For SKUs with a stateful rule pass
    ``prev_index`` (the ladder index charged in period t-1; -1 = today's price, which is what period 0 uses);
    without it they get the choice after their most likely previous price.
    """
    n = solution.item_ids.size
    rows = np.arange(n)
    s = np.clip(np.broadcast_to(np.asarray(stock, dtype=np.int64), (n,)), 0, solution.reach[:, t])
    index = solution.policy[rows, t, s].astype(np.int64)
    if prev_index is not None and t > 0 and solution.policy_by_prev is not None:
        prev = np.broadcast_to(np.asarray(prev_index, dtype=np.int64), (n,))
        use = (solution.stateful_row >= 0) & (prev >= 0)
        k = solution.stateful_row[use]
        index[use] = solution.policy_by_prev[k, t, s[use], prev[use]]
    return index


def policy_price(
    solution: PricingSolution, problem: PricingProblem, t: int, stock: np.ndarray, prev_index: np.ndarray | None = None
) -> np.ndarray:
    """(n,) price the policy sets in period t at the given stock: closed-loop use in a backtest."""
    index = policy_index(solution, t, stock, prev_index)
    return problem.prices[np.arange(index.size), index]
