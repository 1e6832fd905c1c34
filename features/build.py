"""Daily point-in-time feature snapshots computed from the event, price and inventory tables.

A snapshot stamped `T` (midnight UTC starting day D) uses only events before `T` plus the
price and stock in force at `T`, so Feast's point-in-time join can never hand a training row
a value computed from its own future. Windows (7/30/90 days) are differences of cumulative
sums over a dense entity x day grid: one pass, no per-row Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from siyu.data import schema
from siyu.data.identity import attach_user_ids
from siyu.data.store import read_table

USER_FEATURES: tuple[str, ...] = (
    "recency_days",
    "purchases_7d",
    "purchases_30d",
    "purchases_90d",
    "monetary_7d",
    "monetary_30d",
    "monetary_90d",
    "views_7d",
    "views_30d",
    "carts_7d",
    "active_days_30d",
    "online_share_30d",
    "avg_paid_price_90d",
)
ITEM_FEATURES: tuple[str, ...] = (
    "price",
    "list_price",
    "discount_depth",
    "on_promotion",
    "stock",
    "days_of_cover",
    "units_7d",
    "units_30d",
    "item_views_7d",
    "item_views_30d",
    "popularity_trend",
    "conversion_30d",
)
USER_CATEGORY_FEATURES: tuple[str, ...] = ("category_views_30d", "category_carts_30d", "category_purchases_30d")
AFFINITY_WINDOW_DAYS = 30
NEVER_PURCHASED_DAYS = 365.0  # recency for users with no purchase yet: "longer ago than we look"


@dataclass
class FeatureTables:
    user: pd.DataFrame  # user_id, event_timestamp, USER_FEATURES
    item: pd.DataFrame  # item_id, event_timestamp, ITEM_FEATURES
    item_meta: pd.DataFrame  # item_id, category_id: static, served from the in-process item table
    user_category: pd.DataFrame  # user_id, category_id, event_timestamp, USER_CATEGORY_FEATURES
    # user_id, event_timestamp, tiers.history.TIER_FEATURES: filled by the pipeline (tiers fit models per snapshot)
    user_tiers: pd.DataFrame = field(default_factory=pd.DataFrame)


def _day_grid(keys: pd.Series, day: np.ndarray, values: np.ndarray, n_keys: int, n_days: int) -> np.ndarray:
    grid = np.zeros((n_keys, n_days + 1))
    np.add.at(grid, (keys.to_numpy(), day + 1), values)
    return np.cumsum(grid, axis=1)  # column t = total over days < t


def _window(cum: np.ndarray, days: int) -> np.ndarray:
    shifted = np.zeros_like(cum)
    shifted[:, days:] = cum[:, :-days] if days < cum.shape[1] else 0
    return cum - shifted


def _snapshots(
    index: pd.Index, first_day: pd.Timestamp, columns: dict[str, np.ndarray], keep: np.ndarray, key: str
) -> pd.DataFrame:
    """Flatten entity x snapshot grids (snapshot t stamped first_day + t days) into Feast rows."""
    rows, cols = np.nonzero(keep)
    frame = pd.DataFrame({key: index.to_numpy()[rows], "event_timestamp": first_day + pd.to_timedelta(cols, unit="D")})
    for name, grid in columns.items():
        frame[name] = grid[rows, cols].astype(np.float32)
    return frame


def build_feature_tables(
    events: pd.DataFrame, identity: pd.DataFrame, items: pd.DataFrame, prices: pd.DataFrame, inventory: pd.DataFrame
) -> FeatureTables:
    if events.empty:
        raise ValueError("no events to build features from: generate or import data first")
    events = attach_user_ids(events, identity)
    first_day = events["event_time"].min().floor("D")
    day = ((events["event_time"] - first_day) // pd.Timedelta(days=1)).to_numpy()
    n_days = int(day.max()) + 1
    kind = events["event_type"].to_numpy()
    purchase = kind == "purchase"
    view = kind == "view"
    cart = kind == "add_to_cart"
    spend = np.where(purchase, events["quantity"] * events["unit_price"].fillna(0.0), 0.0)
    units = np.where(purchase, events["quantity"], 0)

    user_codes, user_index = pd.factorize(events["user_id"])
    ucodes = pd.Series(user_codes)
    n_users = len(user_index)

    def ugrid(values: np.ndarray) -> np.ndarray:
        return _day_grid(ucodes, day, values.astype(float), n_users, n_days)

    cum_purchases, cum_spend, cum_units = ugrid(purchase), ugrid(spend), ugrid(units)
    cum_views, cum_carts = ugrid(view), ugrid(cart)
    cum_events, cum_online = ugrid(np.ones(len(events))), ugrid(events["channel"].to_numpy() != "pos")
    daily_active = np.diff(cum_events, axis=1, prepend=0) > 0
    cum_active = np.cumsum(daily_active, axis=1)
    last_purchase = np.where(np.diff(cum_purchases, axis=1, prepend=0) > 0, np.arange(n_days + 1), -1)
    last_purchase = np.maximum.accumulate(last_purchase, axis=1)  # index t+1 holds day t's purchase
    snap = np.arange(n_days + 1)
    recency = np.where(last_purchase >= 0, snap - last_purchase + 1, NEVER_PURCHASED_DAYS)
    events_30d = _window(cum_events, 30)
    units_90d = _window(cum_units, 90)
    user_cols = {
        "recency_days": np.minimum(recency, NEVER_PURCHASED_DAYS),
        "purchases_7d": _window(cum_purchases, 7),
        "purchases_30d": _window(cum_purchases, 30),
        "purchases_90d": _window(cum_purchases, 90),
        "monetary_7d": _window(cum_spend, 7),
        "monetary_30d": _window(cum_spend, 30),
        "monetary_90d": _window(cum_spend, 90),
        "views_7d": _window(cum_views, 7),
        "views_30d": _window(cum_views, 30),
        "carts_7d": _window(cum_carts, 7),
        "active_days_30d": _window(cum_active, 30),
        "online_share_30d": np.divide(
            _window(cum_online, 30), events_30d, out=np.zeros_like(events_30d), where=events_30d > 0
        ),
        "avg_paid_price_90d": np.divide(
            _window(cum_spend, 90), units_90d, out=np.full_like(units_90d, np.nan), where=units_90d > 0
        ),
    }
    seen_90d = (_window(cum_events, 90) > 0) & (snap[None, :] > 0)
    user = _snapshots(user_index, first_day, user_cols, seen_90d, "user_id")
    item = _item_snapshots(events, day, n_days, first_day, items, prices, inventory)
    meta = items[["item_id", "category_id"]].drop_duplicates("item_id")
    user_category = _user_category_steps(events, day, meta, first_day)
    return FeatureTables(user=user, item=item, item_meta=meta, user_category=user_category)


def _user_category_steps(
    events: pd.DataFrame, day: np.ndarray, meta: pd.DataFrame, first_day: pd.Timestamp
) -> pd.DataFrame:
    """How much a user engaged with a category in the last 30 days, as a step function in time.

    A user x category x day grid would be mostly zeros, so only the days the value changes get a
    row: +count the midnight after the activity, -count when it leaves the window. Feast's
    point-in-time join then reads the value in force at any moment, like a daily snapshot would.
    """
    kinds = {"view": "category_views_30d", "add_to_cart": "category_carts_30d", "purchase": "category_purchases_30d"}
    frame = pd.DataFrame({"user_id": events["user_id"], "item_id": events["item_id"], "day": day})
    for kind, name in kinds.items():
        frame[name] = (events["event_type"] == kind).to_numpy(dtype=np.float32)
    frame = frame[events["event_type"].isin(list(kinds)).to_numpy() & events["item_id"].notna().to_numpy()]
    frame = frame.merge(meta, on="item_id", how="inner")
    keys = ["user_id", "category_id"]
    daily = frame.groupby([*keys, "day"], as_index=False)[list(kinds.values())].sum()
    enters = daily.assign(step=daily["day"] + 1)
    leaves = daily.assign(step=daily["day"] + 1 + AFFINITY_WINDOW_DAYS)
    leaves[list(kinds.values())] *= -1
    steps = pd.concat([enters, leaves]).groupby([*keys, "step"], as_index=False)[list(kinds.values())].sum()
    steps = steps.sort_values([*keys, "step"], ignore_index=True)
    steps[list(kinds.values())] = steps.groupby(keys)[list(kinds.values())].cumsum().round(3)
    steps["event_timestamp"] = first_day + pd.to_timedelta(steps["step"], unit="D")
    return steps[[*keys, "event_timestamp", *kinds.values()]]


def _item_snapshots(
    events: pd.DataFrame,
    day: np.ndarray,
    n_days: int,
    first_day: pd.Timestamp,
    items: pd.DataFrame,
    prices: pd.DataFrame,
    inventory: pd.DataFrame,
) -> pd.DataFrame:
    has_item = events["item_id"].notna().to_numpy()
    item_index = pd.Index(pd.unique(pd.concat([items["item_id"], events.loc[has_item, "item_id"]])))
    codes = pd.Series(item_index.get_indexer(events.loc[has_item, "item_id"]))
    kind = events.loc[has_item, "event_type"].to_numpy()
    d = day[has_item]
    n = len(item_index)

    def igrid(values: np.ndarray) -> np.ndarray:
        return _day_grid(codes, d, values.astype(float), n, n_days)

    qty = events.loc[has_item, "quantity"].to_numpy()
    cum_units = igrid(np.where(kind == "purchase", qty, 0))
    cum_purchases = igrid(kind == "purchase")
    cum_views = igrid(kind == "view")
    units_7d, views_7d, views_30d = _window(cum_units, 7), _window(cum_views, 7), _window(cum_views, 30)

    list_price = items.set_index("item_id")["list_price"].reindex(item_index).to_numpy(dtype=float)
    book_price = _daily_grid(prices, "price", item_index, first_day, n_days)
    price = book_price
    if np.isnan(book_price).all():  # imported logs without a price book: last price seen in events
        price = _last_seen_price(events.loc[has_item], codes, d, n, n_days)
    list_filled = np.where(np.isnan(list_price), pd.DataFrame(price).max(axis=1).to_numpy(), list_price)
    stock = _daily_grid(inventory, "stock", item_index, first_day, n_days)
    item_cols = {
        "price": price,
        "list_price": np.broadcast_to(list_filled[:, None], price.shape),
        "discount_depth": 1.0 - price / list_filled[:, None],
        "on_promotion": _daily_grid(prices, "on_promotion", item_index, first_day, n_days),
        "stock": stock,
        "days_of_cover": stock / (units_7d / 7.0 + 0.1),
        "units_7d": units_7d,
        "units_30d": _window(cum_units, 30),
        "item_views_7d": views_7d,
        "item_views_30d": views_30d,
        "popularity_trend": (views_7d * 30 / 7 + 1) / (views_30d + 1),
        "conversion_30d": _window(cum_purchases, 30) / (views_30d + 1),
    }
    # An item gets a snapshot while it is on sale (priced, from the first midnight on) or was seen in
    # the last 90 days: a large imported catalogue of long-dead items would otherwise fill the store.
    keep = ~np.isnan(book_price) | (_window(cum_views + cum_units, 90) > 0)
    return _snapshots(item_index, first_day, item_cols, keep, "item_id")


def _daily_grid(table: pd.DataFrame, column: str, index: pd.Index, first_day: pd.Timestamp, n_days: int) -> np.ndarray:
    """Value in force at each snapshot: snapshot t (midnight before day t) carries day t's value."""
    grid = np.full((len(index), n_days + 1), np.nan)
    if table.empty:
        return grid
    rows = index.get_indexer(table["item_id"])
    day = ((pd.to_datetime(table["date"]).dt.tz_localize("UTC") - first_day) // pd.Timedelta(days=1)).to_numpy()
    ok = (rows >= 0) & (day >= 0) & (day <= n_days)
    grid[rows[ok], day[ok]] = table[column].to_numpy(dtype=float)[ok]
    return pd.DataFrame(grid).ffill(axis=1).to_numpy()


def _last_seen_price(events: pd.DataFrame, codes: pd.Series, day: np.ndarray, n: int, n_days: int) -> np.ndarray:
    grid = np.full((n, n_days + 1), np.nan)
    priced = events["unit_price"].notna().to_numpy()
    grid[codes.to_numpy()[priced], day[priced] + 1] = events["unit_price"].to_numpy()[priced]
    return pd.DataFrame(grid).ffill(axis=1).to_numpy()


def load_feature_tables(settings) -> FeatureTables:
    """Read the stored data layer and build snapshots from it."""
    return build_feature_tables(
        read_table(settings.events_dir, schema.EVENT_SCHEMA),
        read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA),
        read_table(settings.items_path, schema.ITEM_SCHEMA),
        read_table(settings.prices_path, schema.PRICE_SCHEMA),
        read_table(settings.inventory_path, schema.INVENTORY_SCHEMA),
    )
