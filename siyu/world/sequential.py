"""What makes a user's next item depend on their past: complements, repurchase cycles, drifting interest, intent.

The world's sessions are not iid draws from a fixed taste: after buying an item, its complements
are shown and bought more for two weeks; a consumable comes due again around its repurchase
interval; the categories a user browses drift day by day; and each session has an intent stage
(browse / need / purchase) that sets its length, its purchase propensity and how much it leans on
due items and complements.

All of it is a function of a user's *day-start state* (`ChoiceState`): purchases made today change
the state from tomorrow on. That keeps a session's impressions iid given (user, day-start state,
stage, session category), which is what lets the demand truth and the next-item oracle stay exact.

A regular session's stage is drawn from `STAGE_PROBS`; its category comes from the user's interest
that day; its first impression is an item of that category (by popularity); then Poisson(...) more
draws arrive as a stream mixing two sources: taste draws from the session's category at rate
`TASTE_DRAWS[stage]`, and sequential draws of each due or complement item i at rate
`DUE_DRAWS[stage] x due_draw(i) + COMPLEMENT_DRAWS[stage] x complement_draw(i)` (the weights scaled
so that each kind sums to at most 1 over a user's row: a heavy buyer is not shown more sequential
items, only more different ones; store sessions scale all rates by `STORE_DRAW_SCALE`). By Poisson
superposition the draws after the first are iid from the mixture, and P(item shown in the session)
has a closed form. Repeats collapse.

A user with something due also comes back for it: on top of the regular sessions there are
Poisson(E[sessions] x `REPLENISH_SESSIONS` x due level) *replenishment* sessions, in the purchase
stage, whose 1 + Poisson(total rate) draws all come from the user's due and complement rows. So the
purchase stage is likelier when something is due, and because those sessions only touch the sparse
rows, the demand truth's dense part does not depend on the state at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siyu.world.entities import CATEGORY_TEMPERATURE, Items, WorldConfig

STAGES = ("browse", "need", "purchase")
PURCHASE_STAGE = 2
STAGE_PROBS = np.array([0.5, 0.3, 0.2])  # of regular sessions
REPLENISH_SESSIONS = 0.6  # extra purchase-stage sessions per regular session at due level 1 (come back to rebuy)
STAGE_LOGIT = np.array([-0.6, 0.0, 0.9])  # purchase-logit offset of each stage
TASTE_DRAWS = np.array([4.0, 3.0, 1.5])  # Poisson mean of taste draws after the first impression, per stage
DUE_DRAWS = np.array([0.3, 1.0, 2.0])  # sequential draws per unit of (capped) due weight, per stage
COMPLEMENT_DRAWS = np.array([0.3, 0.6, 0.8])  # sequential draws per unit of (capped) complement weight, per stage
STORE_DRAW_SCALE = 0.5  # a store visit shows fewer items than an online session

COMPLEMENT_DAYS = 14  # a purchase makes its complements relevant for this many days...
COMPLEMENT_DECAY_DAYS = 7.0  # ...with weight exp(-age / 7)
COMPLEMENT_BOOST = 0.6  # purchase-logit boost x complement weight
REPURCHASE_BOOST = 1.0  # purchase-logit boost x due weight
DUE_WIDTH = 0.25  # the due window's standard deviation as a share of the interval
DUE_CUTOFF = 3.0  # the due window ends this many standard deviations from its peak

INTEREST_RHO = 0.98  # day-to-day autocorrelation of the interest's drifting part
INTEREST_DRIFT_SHARE = 0.4  # share of the interest's variance that drifts; the rest is the user's fixed taste


@dataclass
class ChoiceState:
    """Every user's state at the start of a day: what the day's sessions are drawn from.

    `interest` is the (drifted) vector that sets the category mix; the sparse rows (CSR by user,
    items sorted within a row) hold each user's due and complement weights. The stage mix of regular
    sessions is `STAGE_PROBS` for everyone; the due level sets the rate of replenishment sessions.
    """

    day: int
    n_items: int
    centroids: np.ndarray  # (categories, taste_dim) the world's category centres (shared, never changed)
    interest: np.ndarray  # (users, taste_dim) float32
    due_level: np.ndarray  # (users,) min(1, total due weight): sets the rate of replenishment sessions
    indptr: np.ndarray  # (users + 1,) row starts into the entry arrays
    item: np.ndarray  # (entries,) item index
    due: np.ndarray  # (entries,) due weight in [0, 1]: sets the logit boost
    complement: np.ndarray  # (entries,) complement weight in [0, 1]: sets the logit boost
    due_draw: np.ndarray  # (entries,) due weight / max(1, the row's total): sets the draw rate
    complement_draw: np.ndarray  # (entries,) the same for complements

    def category_probs(self, user: np.ndarray) -> np.ndarray:
        """(len(user), categories) each given user's category mix today, from their drifted interest."""
        return category_probs(self.interest[user], self.centroids)

    @property
    def entry_user(self) -> np.ndarray:
        return np.repeat(np.arange(self.indptr.size - 1), np.diff(self.indptr))

    def boost(self) -> np.ndarray:
        """(entries,) purchase-logit boost of each sparse entry."""
        return REPURCHASE_BOOST * self.due + COMPLEMENT_BOOST * self.complement

    def boost_at(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """The purchase-logit boost of each (user, item) pair today: 0 unless the item is due or a complement."""
        entry = self.lookup(user, item)
        found = entry >= 0
        boost = np.zeros(user.size)
        boost[found] = self.boost()[entry[found]]
        return boost

    def row_totals(self, weight: np.ndarray) -> np.ndarray:
        """(users,) the sum of a per-entry weight over each user's row."""
        return np.bincount(self.entry_user, weights=weight, minlength=self.indptr.size - 1)

    def lookup(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Entry index of each (user, item) pair, -1 where the pair has no entry (rows are sorted by item)."""
        if self.item.size == 0:
            return np.full(user.size, -1)
        key = self.entry_user.astype(np.int64) * self.n_items + self.item
        want = user.astype(np.int64) * self.n_items + item
        pos = np.minimum(np.searchsorted(key, want), key.size - 1)
        return np.where(key[pos] == want, pos, -1)


def category_probs(interest: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """P(category | interest): the softmax the users' browse preference has always been."""
    logits = CATEGORY_TEMPERATURE * (interest @ centroids.T.astype(interest.dtype))
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def drift_interest(cfg: WorldConfig, taste: np.ndarray, interest: np.ndarray, day: int) -> np.ndarray:
    """Move every user's interest one day: an AR(1) deviation around their fixed taste.

    interest = sqrt(1 - s) x taste + sqrt(s) x deviation, and the deviation follows
    dev' = rho dev + sqrt(1 - rho^2) noise from its stationary law, so the interest's marginal equals the
    taste's every day, and its pull towards the taste keeps the world stationary (what a user likes once
    they see an item, the purchase utility, keeps the fixed taste). Draws from a stream of its own per day,
    so re-simulating a day drifts it the same way.
    """
    keep = np.sqrt(1 - INTEREST_DRIFT_SHARE)
    deviation = (interest - keep * taste) / np.sqrt(INTEREST_DRIFT_SHARE)
    deviation = INTEREST_RHO * deviation + np.sqrt(1 - INTEREST_RHO**2) * _interest_noise(cfg, taste.shape, day)
    return (keep * taste + np.sqrt(INTEREST_DRIFT_SHARE) * deviation).astype(np.float32)


def initial_interest(cfg: WorldConfig, taste: np.ndarray) -> np.ndarray:
    """Day 0's interest: the fixed taste plus a deviation drawn from its stationary law."""
    deviation = _interest_noise(cfg, taste.shape, 0)
    return (np.sqrt(1 - INTEREST_DRIFT_SHARE) * taste + np.sqrt(INTEREST_DRIFT_SHARE) * deviation).astype(np.float32)


def _interest_noise(cfg: WorldConfig, shape: tuple[int, ...], day: int) -> np.ndarray:
    """Standard normal noise on the taste's scale, from the day's own stream."""
    noise = np.random.default_rng([cfg.seed, 3, day]).standard_normal(shape, dtype=np.float32)
    return noise / np.float32(np.sqrt(cfg.taste_dim))


class PurchaseMemory:
    """The purchases that still matter: the last purchase day of each (user, consumable), and recent purchases."""

    def __init__(self, items: Items, users: int) -> None:
        self.items, self.users = items, users
        self.last_key = np.zeros(0, dtype=np.int64)  # user x items + item, consumables only, sorted
        self.last_day = np.zeros(0, dtype=np.int64)
        self.recent = np.zeros((3, 0), dtype=np.int64)  # rows: user, item, day of the last COMPLEMENT_DAYS' purchases

    def record(self, day: int, user: np.ndarray, item: np.ndarray) -> None:
        """Remember the day's purchases (one row per purchasing impression)."""
        m = self.items.ids.size
        consumable = self.items.consumable[item]
        keys = np.concatenate([self.last_key, user[consumable].astype(np.int64) * m + item[consumable]])
        days = np.concatenate([self.last_day, np.full(int(consumable.sum()), day, dtype=np.int64)])
        # The newest purchase of a pair wins: sort by key then day, keep each key's last row.
        order = np.lexsort((days, keys))
        keys, days = keys[order], days[order]
        last = np.ones(keys.size, dtype=bool)
        last[:-1] = keys[1:] != keys[:-1]
        self.last_key, self.last_day = keys[last], days[last]
        today = np.stack([user, item, np.full(user.size, day)]).astype(np.int64)
        recent = np.concatenate([self.recent, today], axis=1)
        self.recent = recent[:, recent[2] > day - COMPLEMENT_DAYS]

    def state(self, day: int, interest: np.ndarray, centroids: np.ndarray) -> ChoiceState:
        """The day-start state for `day` (purchases up to the day before), given the day's drifted interest."""
        m = self.items.ids.size
        due_user, due_item, due_w = self._due(day)
        comp_user, comp_item, comp_w = self._complements(day)
        key, row = np.unique(np.concatenate([due_user * m + due_item, comp_user * m + comp_item]), return_inverse=True)
        due = np.bincount(row[: due_w.size], weights=due_w, minlength=key.size)
        complement = np.minimum(np.bincount(row[due_w.size :], weights=comp_w, minlength=key.size), 1.0)
        user, item = key // m, key % m
        row_due = np.bincount(user, weights=due, minlength=self.users)
        row_comp = np.bincount(user, weights=complement, minlength=self.users)
        return ChoiceState(
            day=day,
            n_items=m,
            centroids=centroids,
            interest=interest,
            due_level=np.minimum(row_due, 1.0),
            indptr=np.r_[0, np.cumsum(np.bincount(user, minlength=self.users))],
            item=item,
            due=due,
            complement=complement,
            due_draw=due / np.maximum(row_due[user], 1.0),
            complement_draw=complement / np.maximum(row_comp[user], 1.0),
        )

    def _due(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Consumables coming due: a Gaussian window around last purchase + interval, cut at DUE_CUTOFF sds."""
        m = self.items.ids.size
        item = self.last_key % m
        interval = self.items.repurchase_interval[item].astype(float)
        z = (day - self.last_day - interval) / (DUE_WIDTH * interval)
        live = (np.abs(z) <= DUE_CUTOFF) & (day > self.last_day)
        return self.last_key[live] // m, item[live], np.exp(-0.5 * z[live] ** 2)

    def _complements(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Complements of the purchases of the last COMPLEMENT_DAYS days, weighted by exp(-age / decay)."""
        user, item, bought = self.recent[:, (self.recent[2] < day) & (self.recent[2] >= day - COMPLEMENT_DAYS)]
        comps = self.items.complements[item]  # (n, k)
        weight = np.repeat(np.exp(-(day - bought) / COMPLEMENT_DECAY_DAYS), comps.shape[1])
        user = np.repeat(user, comps.shape[1])
        item = comps.ravel()
        keep = item >= 0
        return user[keep], item[keep], weight[keep]
