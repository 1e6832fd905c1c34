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

import numpy as np

from siyu.world.entities import (
    BASE_LOGIT,
    PRICE_WEIGHT,
    STORE_BOOST,
    TASTE_WEIGHT,
    Items,
    Users,
    WorldConfig,
)
from siyu.world.simulate import (
    EXTRA_QUANTITY_MEAN,
    ONLINE_ITEMS_PER_SESSION,
    STORE_ITEMS_PER_SESSION,
    expected_sessions,
    show_probability,
    sigmoid,
)

# The price ladder the truth is tabulated on, as multiples of each item's list price.
TRUTH_PRICE_MULTIPLIERS = np.round(np.linspace(0.5, 1.2, 15), 3)
USER_CHUNK = 1000  # users per block: a (users x items x prices) block stays a few hundred MB at most


def within_category_share(items: Items) -> np.ndarray:
    """P(item | its category) for every item, from the per-category popularity CDFs."""
    share = np.zeros(items.ids.size)
    for members, cdf in zip(items.members_of_category, items.within_category_cdf, strict=True):
        share[members] = np.diff(cdf, prepend=0.0)
    return share


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
        category_share = np.diff(users.category_cdf[u], prepend=0.0, axis=1)[:, items.category]
        show_store = show_probability(category_share, within, STORE_ITEMS_PER_SESSION)
        show_online = show_probability(category_share, within, ONLINE_ITEMS_PER_SESSION)
        logit = item_logit + TASTE_WEIGHT * users.taste[u] @ items.vec.T  # (Uc, I)
        price_term = -(users.beta[u] * PRICE_WEIGHT)[:, None, None] * log_m  # (Uc, 1, L)
        p_store = users.p_store[u][:, None, None]
        per_session = p_store * show_store[..., None] * sigmoid(logit[..., None] + STORE_BOOST + price_term) + (
            1 - p_store
        ) * show_online[..., None] * sigmoid(logit[..., None] + price_term)
        demand += active @ per_session.reshape(per_session.shape[0], -1)
    return demand.reshape(len(days), n_items, n_prices) * (1.0 + EXTRA_QUANTITY_MEAN)
