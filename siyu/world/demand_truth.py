"""The world's true expected demand per item and day as a function of price: what a pricing oracle knows.

Derived exactly from the simulator's own traffic and utility model, not estimated from its
draws: expected units of item i on day d at price p are

    sum over users u of  E[sessions of u on d]
        x [ P(store) P(i shown | store session) sigmoid(logit_store(u, i, p))
          + P(online) P(i shown | online session) sigmoid(logit_online(u, i, p)) ]
        x E[units per buyer]

with promotions off (a price decision, not a promotion). Units are *wanted* units: what would
sell with enough stock. Evaluation and the pricing backtest read this; no model ever does.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from siyu.world.entities import (
    BASE_LOGIT,
    PRICE_WEIGHT,
    STORE_BOOST,
    TASTE_WEIGHT,
    Items,
    Users,
    WorldConfig,
    within_category_share,
)
from siyu.world.simulate import (
    EXTRA_QUANTITY_MEAN,
    ONLINE_ITEMS_PER_SESSION,
    STORE_ITEMS_PER_SESSION,
    expected_sessions,
)

# The price ladder the truth is tabulated on, as multiples of each item's list price.
TRUTH_PRICE_MULTIPLIERS = np.round(np.linspace(0.5, 1.2, 15), 3)
USER_CHUNK = 1000  # users per block: a (users x items x prices) block stays a few hundred MB at most


@njit(parallel=True, fastmath=True, cache=True)
def _units_per_session(
    logit: np.ndarray,
    price_weight: np.ndarray,
    log_m: np.ndarray,
    category_share: np.ndarray,
    item_category: np.ndarray,
    within: np.ndarray,
    p_store: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[u, i * L + l] = expected purchases of item i in one session of user u at price multiplier l.

    P(item shown in a session): a session draws 1 + Poisson(mu) items and repeats collapse; one draw
    picks the item with q = P(category) x P(item | category), so with n draws P(shown) = 1 - (1 - q)^n,
    and for n = 1 + Poisson(mu), E[(1 - q)^n] = (1 - q) exp(-mu q).

    The hot loop of a big world's truth (hundreds of thousands of users x thousands of items x
    15 prices), fused and free of exp in the innermost loop: sigmoid(x) = 1 / (1 + e) with
    e = exp(-logit) x m^(price weight), and the in-store sigmoid reuses e times exp(-STORE_BOOST).
    """
    n_users, n_items = logit.shape
    n_prices = log_m.size
    store_factor = math.exp(-STORE_BOOST)
    for u in prange(n_users):
        scale = np.exp(price_weight[u] * log_m)  # m^(beta x PRICE_WEIGHT): the price term of the logit
        for i in range(n_items):
            q = category_share[u, item_category[i]] * within[i]
            shown_store = p_store[u] * (1.0 - (1.0 - q) * math.exp(-STORE_ITEMS_PER_SESSION * q))
            shown_online = (1.0 - p_store[u]) * (1.0 - (1.0 - q) * math.exp(-ONLINE_ITEMS_PER_SESSION * q))
            e_base = math.exp(-logit[u, i])
            for p in range(n_prices):
                e = e_base * scale[p]
                out[u, i * n_prices + p] = shown_store / (1.0 + e * store_factor) + shown_online / (1.0 + e)


def true_demand(
    cfg: WorldConfig,
    users: Users,
    items: Items,
    days: np.ndarray,
    multipliers: np.ndarray = TRUTH_PRICE_MULTIPLIERS,
) -> np.ndarray:
    """Expected wanted units, shape (len(days), items, len(multipliers)), at price = multiplier x list price."""
    sessions = np.stack([expected_sessions(cfg, users, int(d)) for d in days])  # (D, U)
    within = within_category_share(items)
    log_m = np.log(np.asarray(multipliers, dtype=float))
    n_items, n_prices = items.ids.size, log_m.size
    demand = np.zeros((len(days), n_items * n_prices))
    item_logit = BASE_LOGIT + items.appeal + items.level_logit
    for lo in range(0, users.ids.size, USER_CHUNK):
        u = slice(lo, lo + USER_CHUNK)
        active = sessions[:, u]
        if not active.any():
            continue
        logit = item_logit + TASTE_WEIGHT * users.taste[u] @ items.vec.T  # (Uc, I)
        per_session = np.empty((logit.shape[0], n_items * n_prices), dtype=np.float32)
        _units_per_session(
            logit,
            users.beta[u] * PRICE_WEIGHT,
            log_m,
            np.diff(users.category_cdf[u], prepend=0.0, axis=1),
            items.category,
            within,
            users.p_store[u],
            per_session,
        )
        # float32 halves the matrix product's cost; sums are kept in float64 (relative error ~1e-7).
        demand += active.astype(np.float32) @ per_session
    return demand.reshape(len(days), n_items, n_prices) * (1.0 + EXTRA_QUANTITY_MEAN)
