"""The synthetic world's fixed parts: users, items, stores, the price book and identities.

Everything that a real brand would *not* observe (tastes, price sensitivity, lifecycle dates,
which identifiers belong to one person) lives in `WorldTruth`; what the brand's systems see is
written by the generator from the simulation. All draws come from one seeded generator, so a
world is a pure function of its `WorldConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

# Utility model: P(purchase | impression) = sigmoid(BASE_LOGIT + appeal + TASTE_WEIGHT * taste·item
#   - beta_user * PRICE_WEIGHT * log(price / list_price) - LEVEL_WEIGHT * log(list / category base)
#   + PROMO_BOOST * on_promotion + STORE_BOOST * in_store)
BASE_LOGIT = -3.2
TASTE_WEIGHT = 1.6
PRICE_WEIGHT = 2.0
LEVEL_WEIGHT = 0.6
PROMO_BOOST = 0.3
STORE_BOOST = 1.2
CATEGORY_TEMPERATURE = 2.0  # how strongly taste steers which categories a user browses

# Sequential traits of the catalogue (drawn from their own stream, see `_sequential_traits`).
COMPLEMENTS_PER_ITEM = 3  # items in the complementary category that go with an item (cup -> lids, filters, beans)
CONSUMABLE_SHARE = {"regular": 0.3, "perishable": 0.6, "seasonal": 0.0}  # bought again once used up
REPURCHASE_INTERVAL_MEDIAN = 10.0  # days between purchases of a consumable: lognormal around this, clipped
REPURCHASE_INTERVAL_SIGMA = 0.45
REPURCHASE_INTERVAL_RANGE = (4, 45)


@dataclass(frozen=True)
class WorldConfig:
    """Size and seed of a world; the defaults make a world that generates in seconds."""

    users: int = 1000
    items: int = 200
    days: int = 30
    seed: int = 42
    start: date = date(2026, 1, 1)
    stores: int = 5
    taste_dim: int = 8
    perishable_share: float = 0.15  # fresh food: batches with a shelf life, expired units written off
    seasonal_share: float = 0.10  # one stock, no replenishment, a sell-by date and a salvage value

    @property
    def categories(self) -> int:
        return max(4, min(60, self.items // 40))


@dataclass
class Users:
    ids: np.ndarray  # user_id strings
    taste: np.ndarray  # (n, d)
    beta: np.ndarray  # price sensitivity multiplier
    visit_rate: np.ndarray  # sessions per day while active
    signup_day: np.ndarray  # may be negative: existing members
    dormant_day: np.ndarray
    churn_day: np.ndarray
    p_store: np.ndarray  # share of sessions in a physical store (0 for non-members)
    p_app: np.ndarray  # share of online sessions in the app (vs the mini-program)
    home_store: np.ndarray
    openid: np.ndarray  # object arrays, None where the user has no such identifier
    device_id: np.ndarray
    member_id: np.ndarray
    phone_hash: np.ndarray
    category_cdf: np.ndarray = field(repr=False)  # (n, categories) the fixed taste's category mix (stock sizing)


@dataclass
class Items:
    ids: np.ndarray
    category: np.ndarray  # int index
    brand: np.ndarray
    vec: np.ndarray  # (m, d)
    appeal: np.ndarray
    list_price: np.ndarray
    cost: np.ndarray
    level_logit: np.ndarray  # -LEVEL_WEIGHT * log(list / category base), fixed per item
    replenish_every: np.ndarray  # days
    target_stock: np.ndarray
    kind: np.ndarray  # "regular" | "perishable" | "seasonal"
    shelf_life: np.ndarray  # days a perishable batch lasts (0 otherwise); batches arrive every shelf_life days
    sell_by_day: np.ndarray  # last selling day of a seasonal item (-1 otherwise); leftovers are salvaged after it
    salvage_value: np.ndarray  # per unit left at the end of a batch or season (0 = written off); NaN for regular
    consumable: np.ndarray  # bool: used up and bought again (groceries, toiletries)
    repurchase_interval: np.ndarray  # days a consumable lasts a buyer (0 otherwise)
    complements: np.ndarray  # (m, COMPLEMENTS_PER_ITEM) items of the complementary category, -1 where it has fewer
    complement_category: np.ndarray  # (categories,) the category that complements each category; never itself
    within_category_cdf: list[np.ndarray] = field(repr=False)
    members_of_category: list[np.ndarray] = field(repr=False)


def _hex_ids(rng: np.random.Generator, n: int, prefix: str, width: int = 12) -> np.ndarray:
    digits = rng.integers(0, 16**6, size=(n, 2))
    return np.array([f"{prefix}{a:06x}{b:06x}"[: len(prefix) + width] for a, b in digits], dtype=object)


def _softmax_cdf(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cdf = np.cumsum(z / z.sum(axis=-1, keepdims=True), axis=-1)
    cdf[..., -1] = 1.0
    return cdf


def make_users(cfg: WorldConfig, rng: np.random.Generator, centroids: np.ndarray) -> Users:
    n, d = cfg.users, cfg.taste_dim
    taste = rng.normal(0, 1, (n, d)) / np.sqrt(d)
    signup = np.where(rng.random(n) < 0.5, -rng.integers(1, 365, n), rng.integers(0, max(cfg.days, 1), n))
    dormant = signup + np.ceil(rng.exponential(90, n)).astype(int) + 7
    churn = dormant + np.ceil(rng.exponential(45, n)).astype(int)
    is_member = rng.random(n) < 0.7
    # Non-members use one online channel only: nothing would tie two of their identifiers together.
    uses_app = rng.random(n) < 0.45
    uses_mini = ~uses_app | (is_member & (rng.random(n) < 0.8))
    has_phone = is_member & (uses_app | (rng.random(n) < 0.6))
    has_phone |= uses_app  # the app logs in with a phone number
    p_store = np.where(is_member, rng.beta(2, 4, n), 0.0)
    p_app = np.where(uses_app & uses_mini, rng.beta(2, 2, n), np.where(uses_app, 1.0, 0.0))
    width = len(str(n))
    return Users(
        ids=np.array([f"u{i:0{width}d}" for i in range(n)], dtype=object),
        taste=taste,
        beta=rng.lognormal(0.0, 0.45, n),
        visit_rate=rng.lognormal(np.log(0.18), 0.6, n),
        signup_day=signup,
        dormant_day=dormant,
        churn_day=churn,
        p_store=p_store,
        p_app=p_app,
        home_store=rng.integers(0, cfg.stores, n),
        openid=np.where(uses_mini, _hex_ids(rng, n, "o"), None),
        device_id=np.where(uses_app, _hex_ids(rng, n, "d"), None),
        member_id=np.where(is_member, np.array([f"M{x:09d}" for x in rng.permutation(n) + 10**8], dtype=object), None),
        phone_hash=np.where(has_phone, _hex_ids(rng, n, "p", 16), None),
        category_cdf=_softmax_cdf(CATEGORY_TEMPERATURE * taste @ centroids.T),
    )


def make_items(cfg: WorldConfig, rng: np.random.Generator, centroids: np.ndarray) -> Items:
    m, d, c = cfg.items, cfg.taste_dim, cfg.categories
    category = rng.integers(0, c, m)
    category[:c] = np.arange(min(c, m))  # every category has at least one item
    vec = centroids[category] + 0.6 * rng.normal(0, 1, (m, d)) / np.sqrt(d)
    category_base = rng.lognormal(np.log(60), 0.7, c)
    list_price = np.maximum(1.0, np.round(category_base[category] * rng.lognormal(0, 0.35, m)) - 0.1)
    appeal = rng.normal(0, 0.5, m)
    popularity = np.exp(1.2 * appeal + rng.normal(0, 0.5, m))
    members = [np.flatnonzero(category == k) for k in range(c)]
    kind, shelf_life, sell_by, salvage_share = _stock_kinds(cfg, m)
    cdfs = []
    for idx in members:
        w = popularity[idx]
        cdf = np.cumsum(w / w.sum())
        cdf[-1] = 1.0
        cdfs.append(cdf)
    consumable, interval, complements, complement_category = _sequential_traits(cfg, category, kind, cdfs, members)
    items = Items(
        ids=np.array([f"i{i:0{len(str(m))}d}" for i in range(m)], dtype=object),
        category=category,
        brand=category * 10 + rng.integers(0, 4, m),
        vec=vec,
        appeal=appeal,
        list_price=list_price,
        cost=np.round(list_price * rng.uniform(0.35, 0.65, m), 2),
        level_logit=-LEVEL_WEIGHT * np.log(list_price / category_base[category]),
        replenish_every=np.where(kind == "perishable", shelf_life, rng.choice([7, 14], m)),
        target_stock=np.zeros(m, dtype=np.int64),  # sized from expected demand by the simulator
        kind=kind,
        shelf_life=shelf_life,
        sell_by_day=sell_by,
        salvage_value=salvage_share,  # a share of cost until the cost is known, just below
        consumable=consumable,
        repurchase_interval=interval,
        complements=complements,
        complement_category=complement_category,
        within_category_cdf=cdfs,
        members_of_category=members,
    )
    items.salvage_value = np.round(items.cost * salvage_share, 2)
    return items


def within_category_share(items: Items) -> np.ndarray:
    """P(item | its category) for every item, from the per-category popularity CDFs."""
    share = np.zeros(items.ids.size)
    for members, cdf in zip(items.members_of_category, items.within_category_cdf, strict=True):
        share[members] = np.diff(cdf, prepend=0.0)
    return share


def _stock_kinds(cfg: WorldConfig, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which items are perishable or seasonal, drawn from their own stream so older worlds keep their draws.

    Returns kind, shelf life, sell-by day and the salvage value as a share of cost.
    """
    rng = np.random.default_rng([cfg.seed, 1])
    draw = rng.random(m)
    kind = np.where(
        draw < cfg.perishable_share,
        "perishable",
        np.where(draw < cfg.perishable_share + cfg.seasonal_share, "seasonal", "regular"),
    ).astype(object)
    shelf_life = np.where(kind == "perishable", rng.choice([3, 4, 5, 7], m), 0)
    sell_by = np.where(kind == "seasonal", rng.integers(max(1, cfg.days // 2), max(2, cfg.days), m), -1)
    # Seasonal leftovers go to an outlet at 20-50% of cost; expired fresh food is worth nothing.
    share = np.select([kind == "seasonal", kind == "perishable"], [rng.uniform(0.2, 0.5, m), 0.0], np.nan)
    return kind, shelf_life.astype(np.int64), sell_by.astype(np.int64), share


def _sequential_traits(
    cfg: WorldConfig, category: np.ndarray, kind: np.ndarray, cdfs: list[np.ndarray], members: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Consumables with their repurchase intervals, and each item's complements.

    Drawn from their own stream so that the users, items and price book of a seed stay what they were.
    Categories are paired by one random cycle (so no category complements itself), and an item's
    complements are drawn without replacement by popularity within the complementary category:
    the popular lids go with most cups. Returns consumable, interval, complements, complement category.
    """
    rng = np.random.default_rng([cfg.seed, 2])
    m, c = category.size, len(members)
    share = np.array([CONSUMABLE_SHARE[k] for k in kind])
    consumable = rng.random(m) < share
    lo, hi = REPURCHASE_INTERVAL_RANGE
    days = np.clip(np.round(rng.lognormal(np.log(REPURCHASE_INTERVAL_MEDIAN), REPURCHASE_INTERVAL_SIGMA, m)), lo, hi)
    interval = np.where(consumable, days, 0).astype(np.int64)
    cycle = rng.permutation(c)
    complement_category = np.empty(c, dtype=np.int64)
    complement_category[cycle] = np.roll(cycle, -1)
    complements = np.full((m, COMPLEMENTS_PER_ITEM), -1, dtype=np.int64)
    for k in range(c):
        items_k, partner = members[k], complement_category[k]
        if not items_k.size:
            continue
        pool, share_in_pool = members[partner], np.diff(cdfs[partner], prepend=0.0)
        take = min(COMPLEMENTS_PER_ITEM, pool.size)
        # Weighted sampling without replacement: the `take` largest of log(weight) + Gumbel noise.
        keys = np.log(np.maximum(share_in_pool, 1e-300)) + rng.gumbel(size=(items_k.size, pool.size))
        complements[items_k, :take] = pool[np.argsort(-keys, axis=1)[:, :take]]
    return consumable, interval, complements, complement_category


def make_price_book(cfg: WorldConfig, rng: np.random.Generator, items: Items) -> tuple[np.ndarray, np.ndarray]:
    """Daily price and promotion flag per item: occasional permanent changes plus 3-day promotions."""
    m, days = cfg.items, cfg.days
    change = rng.random((m, days)) < 0.015
    level = np.where(change, rng.uniform(0.85, 1.1, (m, days)), np.nan)
    level[:, 0] = np.where(np.isnan(level[:, 0]), 1.0, level[:, 0])
    level = pd.DataFrame(level).ffill(axis=1).to_numpy()
    promo_start = rng.random((m, days)) < 1 / 30
    promo = np.zeros((m, days), dtype=bool)
    depth = np.zeros((m, days))
    draw = rng.uniform(0.1, 0.3, (m, days))
    for lag in range(3):
        shifted = np.zeros_like(promo)
        shifted[:, lag:] = promo_start[:, : days - lag]
        depth = np.where(shifted & ~promo, np.roll(draw, lag, axis=1), depth)
        promo |= shifted
    price = np.round(items.list_price[:, None] * level * (1 - depth), 1)
    return np.maximum(price, 0.5), promo


def identity_truth(users: Users) -> pd.DataFrame:
    """Every identifier of every user, with the person it belongs to (evaluation only)."""
    frames = []
    for key_type in ("openid", "device_id", "member_id", "phone_hash"):
        keys = getattr(users, key_type)
        has = keys != None  # noqa: E711 - elementwise on an object array
        frames.append(pd.DataFrame({"user_key_type": key_type, "user_key": keys[has], "true_user_id": users.ids[has]}))
    return pd.concat(frames, ignore_index=True)


def identity_links(users: Users, start: date) -> pd.DataFrame:
    """Links the brand records when a person binds identifiers (mini-program login, app login, till)."""
    base = pd.Timestamp(start, tz="UTC")
    when = base + pd.to_timedelta(np.maximum(users.signup_day, 0), unit="D")
    pairs = (("openid", "member_id"), ("device_id", "phone_hash"), ("member_id", "phone_hash"))
    frames = []
    for a, b in pairs:
        ka, kb = getattr(users, a), getattr(users, b)
        both = (ka != None) & (kb != None)  # noqa: E711
        frames.append(
            pd.DataFrame(
                {"key_type_a": a, "key_a": ka[both], "key_type_b": b, "key_b": kb[both], "link_time": when[both]}
            )
        )
    return pd.concat(frames, ignore_index=True)
