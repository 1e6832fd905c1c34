"""The world's true expected demand per item and day as a function of price: what a pricing oracle knows.

Derived exactly from the simulator's own traffic and utility model, not estimated from its draws.
A day's demand depends on every user's day-start state (`ChoiceState`: drifted interest, due
consumables, complements of recent purchases), so it is computed from the states the simulation
went through. Expected units of item i on day d at price multiplier m are

    sum over users u of  E[sessions of u on d] x sum over stages s and channels ch of
        P(s) P(ch | u) P(i shown | u, d, s, ch) sigmoid(logit(u, i, p) + stage(s) + store(ch) + boost(u, i, d))
    + the same over u's replenishment sessions (purchase stage, due and complement items only)
        x E[units per buyer]

with promotions off (a price decision, not a promotion). Units are *wanted* units: what would sell
with enough stock. Evaluation and the pricing backtest read this; no model ever does.

A session's taste draws all come from its category, so for an item outside the user's sparse rows
P(shown) = P_d(category of i | u) x [1 - (1 - w_i) exp(-mu_s w_i)] (w_i the item's within-category
share): linear in the day's category mix. The dense part is therefore one (users x items x prices)
kernel per user, combined over days by a matrix product with the day weights
E[sessions] x P_d(category | u); the few sparse entries (due and complement items, whose show
probability and logit differ, and which alone replenishment sessions show) are corrected exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numba
import numpy as np
from numba import njit, prange
from threadpoolctl import threadpool_limits

from siyu.world.entities import (
    BASE_LOGIT,
    CATEGORY_TEMPERATURE,
    PRICE_WEIGHT,
    STORE_BOOST,
    TASTE_WEIGHT,
    Items,
    within_category_share,
)
from siyu.world.sequential import (
    COMPLEMENT_DRAWS,
    DUE_DRAWS,
    PURCHASE_STAGE,
    REPLENISH_SESSIONS,
    STAGE_LOGIT,
    STAGE_PROBS,
    STORE_DRAW_SCALE,
    TASTE_DRAWS,
    ChoiceState,
)
from siyu.world.simulate import EXTRA_QUANTITY_MEAN, expected_sessions

if TYPE_CHECKING:
    from siyu.world.simulate import Simulator

# numba's own thread pool rather than its OpenMP layer, unless the environment chose one. The OpenMP layer
# loads the system's libgomp beside the copy torch ships; once both runtimes have run, torch's two-thread
# ops in the same process crawl: after generating the 20k-user world, the decision-path model read
# 9.8 ms per user instead of 0.28 and trained at 558 sequences/s instead of 702. The kernels here run
# from one Python thread at a time (what workqueue asks), and generated that world in the same 17 s.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# The price ladder the truth is tabulated on, as multiples of each item's list price.
TRUTH_PRICE_MULTIPLIERS = np.round(np.linspace(0.5, 1.2, 15), 3)
USER_CHUNK = 1000  # users per block: a (users x items x prices) float32 block stays a few hundred MB at most
N_COMPONENTS = 2 * len(STAGE_PROBS)  # (stage, channel) pairs; the dense kernel spells out its six terms


class _Components:
    """The (stage, channel) mixture components of a session, as flat arrays the kernels index by k = 2 stage + store."""

    def __init__(self, share: np.ndarray) -> None:
        stage = np.repeat(np.arange(len(STAGE_PROBS)), 2)
        self.store = np.tile([False, True], len(STAGE_PROBS))
        scale = np.where(self.store, STORE_DRAW_SCALE, 1.0)
        self.p0 = STAGE_PROBS[stage]
        self.purchase = stage == PURCHASE_STAGE
        self.mu = TASTE_DRAWS[stage] * scale
        self.nu_due = DUE_DRAWS[stage] * scale
        self.nu_comp = COMPLEMENT_DRAWS[stage] * scale
        self.factor = np.exp(-(STAGE_LOGIT[stage] + STORE_BOOST * self.store))  # sigmoid(x + c) = 1 / (1 + e^-x f)
        # P(item shown by the session's taste draws | the session is in the item's category), per component.
        self.shown = 1.0 - (1.0 - share[None, :]) * np.exp(-self.mu[:, None] * share[None, :])


class _Layout:
    """Items sorted by category: a block's columns run (category, price, item) so days combine per category."""

    def __init__(self, items: Items, n_prices: int) -> None:
        self.order = np.argsort(items.category, kind="stable")
        counts = np.bincount(items.category, minlength=len(items.members_of_category))
        self.starts = np.r_[0, np.cumsum(counts)]
        self.n_prices = n_prices
        sorted_cat = items.category[self.order]
        position = np.arange(items.ids.size) - self.starts[sorted_cat]
        # Column of (item, price l) = base[item] + l x stride[item], in the original item order.
        self.base = np.empty(items.ids.size, dtype=np.int64)
        self.stride = np.empty(items.ids.size, dtype=np.int64)
        self.base[self.order] = n_prices * self.starts[sorted_cat] + position
        self.stride[self.order] = counts[sorted_cat]

    def columns(self, category: int) -> slice:
        return slice(self.n_prices * self.starts[category], self.n_prices * self.starts[category + 1])

    def unpack(self, flat: np.ndarray) -> np.ndarray:
        """(D, items x prices) in block order -> (D, items, prices) in the original item order."""
        out = np.empty((flat.shape[0], self.order.size, self.n_prices))
        for c in range(self.starts.size - 1):
            lo, hi = self.starts[c], self.starts[c + 1]
            block = flat[:, self.columns(c)].reshape(flat.shape[0], self.n_prices, hi - lo)
            out[:, self.order[lo:hi], :] = block.transpose(0, 2, 1)
        return out


@njit(fastmath=True, cache=True, inline="always")
def _six_components(e_cat: np.ndarray, w: np.ndarray, f: np.ndarray, row: np.ndarray) -> None:
    """row[j] = sum over the six (stage, channel) components k of w[k, j] / (1 + e_cat[j] f[k])."""
    one = np.float32(1.0)
    for j in range(row.size):
        e = e_cat[j]
        r0, r1, r2 = one / (one + e * f[0]), one / (one + e * f[1]), one / (one + e * f[2])
        r3, r4, r5 = one / (one + e * f[3]), one / (one + e * f[4]), one / (one + e * f[5])
        row[j] = w[0, j] * r0 + w[1, j] * r1 + w[2, j] * r2 + w[3, j] * r3 + w[4, j] * r4 + w[5, j] * r5


@njit(fastmath=True, cache=True, inline="always")
def _online_components(e_cat: np.ndarray, w: np.ndarray, f: np.ndarray, row: np.ndarray) -> None:
    """The same for a user who never visits a store: only the online components (even k) count."""
    one = np.float32(1.0)
    for j in range(row.size):
        e = e_cat[j]
        r0, r2, r4 = one / (one + e * f[0]), one / (one + e * f[2]), one / (one + e * f[4])
        row[j] = w[0, j] * r0 + w[2, j] * r2 + w[4, j] * r4


@njit(parallel=True, fastmath=True, cache=True)
def _dense_per_session(
    e_base: np.ndarray,
    price_weight: np.ndarray,
    log_m: np.ndarray,
    p_store: np.ndarray,
    shown: np.ndarray,
    factor: np.ndarray,
    p0: np.ndarray,
    store: np.ndarray,
    starts: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[u, col]: expected purchases of (item, price) in one regular session of u, given the session is in the
    item's category.

    e_base[u, i] = exp(-logit(u, i)) in block item order; sigmoid(logit + c_k - price term) = 1 / (1 + e f_k m^b)
    for the six (stage, channel) components k (k = 2 x stage + in store). The hot loops are written for the
    vectoriser: they run over one category's items through 1-D views (so indices need no wraparound checks),
    the components are spelled out (a loop over them would not vectorise), and there is no exp inside them.
    """
    n_users, n_items = e_base.shape
    n_prices = log_m.size
    for u in prange(n_users):
        scale = np.exp(price_weight[u] * log_m).astype(np.float32)
        a = np.empty((N_COMPONENTS, n_items), dtype=np.float32)
        for k in range(N_COMPONENTS):
            channel = p_store[u] if store[k] else 1.0 - p_store[u]
            for i in range(n_items):
                a[k, i] = p0[k] * channel * shown[k, i]
        for c in range(starts.size - 1):
            lo, hi = starts[c], starts[c + 1]
            for p in range(n_prices):
                f = factor.astype(np.float32) * scale[p]
                col = n_prices * lo + p * (hi - lo)
                if p_store[u] > 0.0:
                    _six_components(e_base[u, lo:hi], a[:, lo:hi], f, out[u, col : col + hi - lo])
                else:
                    _online_components(e_base[u, lo:hi], a[:, lo:hi], f, out[u, col : col + hi - lo])


@njit(parallel=True, fastmath=True, cache=True)
def _sparse_corrections(
    day_ptr: np.ndarray,
    user: np.ndarray,
    item: np.ndarray,
    due_draw: np.ndarray,
    comp_draw: np.ndarray,
    category_prob: np.ndarray,
    row_due_draw: np.ndarray,
    row_comp_draw: np.ndarray,
    e_plain: np.ndarray,
    e_boosted: np.ndarray,
    sessions: np.ndarray,
    due_level: np.ndarray,
    price_factor: np.ndarray,
    p_store: np.ndarray,
    shown: np.ndarray,
    nu_due: np.ndarray,
    nu_comp: np.ndarray,
    factor: np.ndarray,
    p0: np.ndarray,
    store: np.ndarray,
    purchase: np.ndarray,
    col_base: np.ndarray,
    col_stride: np.ndarray,
    out: np.ndarray,
) -> None:
    """Replace the dense contribution of each sparse (day, user, item) entry by its exact one.

    In a regular session, sequential draws add exp(-rate) to the chance of *not* showing a due or complement
    item, and its logit carries the boost: P(shown) = 1 - exp(-rate) (1 - P(category) x taste-shown).
    A replenishment session (purchase stage) draws 1 + Poisson(total rate) items from the row alone, each
    item with share g = rate / total: P(shown) = 1 - (1 - g) exp(-rate). e_plain and e_boosted are
    exp(-logit) without and with the entry's boost; price_factor[u, p] = m_p^(beta_u x PRICE_WEIGHT).
    Parallel over days: each day writes its own row of `out`.
    """
    n_days, n_prices, n_comp = day_ptr.size - 1, price_factor.shape[1], factor.size
    for d in prange(n_days):
        for e in range(day_ptr[d], day_ptr[d + 1]):
            u, i = user[e], item[e]
            regular = sessions[d, u]
            if regular == 0.0:
                continue
            replenish = regular * REPLENISH_SESSIONS * due_level[d, u]
            for k in range(n_comp):
                channel = p_store[u] if store[k] else 1.0 - p_store[u]
                dense_shown = category_prob[e] * shown[k, i]
                rate = nu_due[k] * due_draw[e] + nu_comp[k] * comp_draw[e]
                true_shown = 1.0 - math.exp(-rate) * (1.0 - dense_shown)
                weight = regular * p0[k] * channel
                exact = weight * true_shown
                if purchase[k] and replenish > 0.0:  # replenishment sessions only ever have the purchase stage
                    g = rate / (nu_due[k] * row_due_draw[e] + nu_comp[k] * row_comp_draw[e])
                    exact += replenish * channel * (1.0 - (1.0 - g) * math.exp(-rate))
                for p in range(n_prices):
                    f = factor[k] * price_factor[u, p]
                    change = exact / (1.0 + e_boosted[e] * f) - weight * dense_shown / (1.0 + e_plain[e] * f)
                    out[d, col_base[i] + p * col_stride[i]] += change


class _Entries:
    """Every day's sparse rows, concatenated day after day; the dense pass fills in their category probabilities."""

    def __init__(self, states: Sequence[ChoiceState]) -> None:
        self.day_ptr = np.r_[0, np.cumsum([s.item.size for s in states])]
        self.day = np.repeat(np.arange(len(states)), np.diff(self.day_ptr))
        self.user = _joined([s.entry_user for s in states], np.int64)
        self.item = _joined([s.item for s in states], np.int64)
        self.boost = _joined([s.boost() for s in states], np.float64)
        self.due_draw = _joined([s.due_draw for s in states], np.float64)
        self.comp_draw = _joined([s.complement_draw for s in states], np.float64)
        self.row_due_draw = _joined([s.row_totals(s.due_draw)[s.entry_user] for s in states], np.float64)
        self.row_comp_draw = _joined([s.row_totals(s.complement_draw)[s.entry_user] for s in states], np.float64)
        self.category_prob = np.zeros(self.item.size)

    def fill_category_probs(self, users: slice, probs: np.ndarray, item_category: np.ndarray) -> None:
        """Take the entries' P(category | user, day) from a block's (categories, days, users) category mix."""
        mine = (self.user >= users.start) & (self.user < users.stop)
        self.category_prob[mine] = probs[item_category[self.item[mine]], self.day[mine], self.user[mine] - users.start]


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate([np.zeros(0, dtype=dtype), *parts]).astype(dtype)


def true_demand(
    sim: Simulator, states: Sequence[ChoiceState], multipliers: np.ndarray = TRUTH_PRICE_MULTIPLIERS
) -> np.ndarray:
    """Expected wanted units, shape (len(states), items, len(multipliers)), at price = multiplier x list price.

    `states` are day-start states the simulation went through (`DayOutput.state`, `Simulator.choice_state`).
    """
    cfg, users, items = sim.cfg, sim.users, sim.items
    log_m = np.log(np.asarray(multipliers, dtype=float))
    layout = _Layout(items, log_m.size)
    share = within_category_share(items)
    comps = _Components(share)
    sessions = np.stack([expected_sessions(cfg, users, s.day) for s in states])  # (D, U)
    flat = np.zeros((len(states), items.ids.size * log_m.size))
    item_logit = BASE_LOGIT + items.appeal + items.level_logit
    entries = _Entries(states)
    # Single-threaded BLAS: the products per category are small, and a second BLAS thread spinning beside
    # the numba kernels' threads slows both down on a small machine.
    with threadpool_limits(limits=1, user_api="blas"):
        for lo in range(0, users.ids.size, USER_CHUNK):
            u = slice(lo, lo + USER_CHUNK)
            if sessions[:, u].any():
                probs = _add_dense_block(sim, states, u, sessions[:, u], item_logit, log_m, layout, comps, flat)
                entries.fill_category_probs(u, probs, items.category)
    if entries.item.size:
        _add_sparse_corrections(sim, states, entries, sessions, item_logit, log_m, layout, comps, flat)
    return layout.unpack(flat) * (1.0 + EXTRA_QUANTITY_MEAN)


def _add_dense_block(
    sim: Simulator,
    states: Sequence[ChoiceState],
    u: slice,
    sessions: np.ndarray,
    item_logit: np.ndarray,
    log_m: np.ndarray,
    layout: _Layout,
    comps: _Components,
    flat: np.ndarray,
) -> np.ndarray:
    """Add one block of users' dense contributions to every day, one matrix product per category.

    Returns the block's category mix per day, (categories, days, users).
    """
    users, items, order = sim.users, sim.items, layout.order
    logit = item_logit[order] + TASTE_WEIGHT * users.taste[u] @ items.vec[order].T  # (Uc, I) block item order
    n_users = logit.shape[0]
    per_session = np.empty((n_users, order.size * log_m.size), dtype=np.float32)
    _dense_per_session(
        np.exp(-logit).astype(np.float32),
        (users.beta[u] * PRICE_WEIGHT).astype(np.float32),
        log_m.astype(np.float32),
        users.p_store[u],
        comps.shown[:, order].astype(np.float32),
        comps.factor,
        comps.p0,
        comps.store,
        layout.starts,
        per_session,
    )
    weight, probs = _day_weights(np.stack([s.interest[u] for s in states]), sessions, sim.centroids)
    _combine_days(weight, per_session, layout, flat)
    return probs


def _day_weights(interest: np.ndarray, sessions: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, D, Uc) E[sessions] x P_d(category | u) in the layout the products per category want, and P itself.

    Computed as centroids @ interest^T so the category axis comes out first without a transposing copy;
    interest and centroids are small, so the logits are far from overflowing exp in float32.
    """
    n_days, n_users, dim = interest.shape
    logits = CATEGORY_TEMPERATURE * (centroids.astype(np.float32) @ interest.reshape(-1, dim).T)  # (C, D x Uc)
    probs = np.exp(logits, out=logits)
    probs /= probs.sum(axis=0, keepdims=True)
    weight = probs * sessions.astype(np.float32).reshape(1, -1)
    shape = (centroids.shape[0], n_days, n_users)
    return weight.reshape(shape), probs.reshape(shape)


def _combine_days(weight: np.ndarray, per_session: np.ndarray, layout: _Layout, flat: np.ndarray) -> None:
    """flat[:, category's columns] += weight[c] @ per_session[:, category's columns], categories spread over threads.

    Each product is small, so BLAS runs single-threaded and the categories run side by side instead (numpy
    releases the GIL in a product and in the float64 accumulation; the categories' columns are disjoint).
    """

    def one(c: int) -> None:
        cols = layout.columns(c)
        flat[:, cols] += weight[c] @ per_session[:, cols]  # float32 product, day sums kept in float64

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(one, [c for c in range(layout.starts.size - 1) if layout.starts[c + 1] > layout.starts[c]]))


def _add_sparse_corrections(
    sim: Simulator,
    states: Sequence[ChoiceState],
    entries: _Entries,
    sessions: np.ndarray,
    item_logit: np.ndarray,
    log_m: np.ndarray,
    layout: _Layout,
    comps: _Components,
    flat: np.ndarray,
) -> None:
    """Correct every day's due and complement entries (all days' entries in one parallel pass)."""
    users, items = sim.users, sim.items
    taste_fit = np.einsum("ij,ij->i", users.taste[entries.user], items.vec[entries.item])
    logit = item_logit[entries.item] + TASTE_WEIGHT * taste_fit
    _sparse_corrections(
        entries.day_ptr,
        entries.user,
        entries.item,
        entries.due_draw,
        entries.comp_draw,
        entries.category_prob,
        entries.row_due_draw,
        entries.row_comp_draw,
        np.exp(-logit),
        np.exp(-logit - entries.boost),
        sessions,
        np.stack([s.due_level for s in states]),
        np.exp(np.outer(users.beta * PRICE_WEIGHT, log_m)),
        users.p_store,
        comps.shown,
        comps.nu_due,
        comps.nu_comp,
        comps.factor,
        comps.p0,
        comps.store,
        comps.purchase,
        layout.base,
        layout.stride,
        flat,
    )
