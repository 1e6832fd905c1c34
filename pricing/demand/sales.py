"""The daily sales panel the demand model learns from: one row per SKU and day of the price book.

Everything comes from what the brand sees (events, items, price book, inventory), never from the
synthetic world's truth. Every feature of day `d` is computed from days strictly before `d`
plus what is known at the opening of `d` (today's price and promotion flag, stock at open), so
the model can be fitted on one period and used for the next without leaking the future.

Sold-out days are flagged `censored`: once stock hits zero no more units can be sold, so the
units recorded that day are a lower bound on demand, not demand itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from siyu.data import schema
from siyu.data.store import read_table
from siyu.settings import Settings

REFERENCE_WINDOW_DAYS = 28  # a regular price is the modal non-promotion price of the last four weeks
FREQUENCY_WINDOW_DAYS = 30  # buyers' purchase frequency is measured per 30 days
TURNOVER_WINDOW_DAYS = 28

SALES_COLUMNS: tuple[str, ...] = (
    "item_id",
    "category_id",
    "date",
    "units",
    "price",
    "on_promotion",
    "list_price",
    "reference_price",
    "stock",
    "censored",
    "views",
    "log_price_ratio",
    "weekday",
    "trend",
    "buyer_frequency",
    "turnover",
)


def daily_sales(settings: Settings) -> pd.DataFrame:
    """The panel for the world or brand data under `settings.data_dir` (see `build_daily_sales`)."""
    if not settings.prices_path.exists():
        raise FileNotFoundError(
            f"no price book at {settings.prices_path}: generate a world (`siyu data generate`) or import one first"
        )
    return build_daily_sales(
        _read_sales_events(settings),
        read_table(settings.items_path, schema.ITEM_SCHEMA),
        read_table(settings.prices_path, schema.PRICE_SCHEMA),
        read_table(settings.inventory_path, schema.INVENTORY_SCHEMA),
    )


def _read_sales_events(settings: Settings) -> pd.DataFrame:
    """Only purchases and views, only the columns used: the event log is the one large input."""
    columns = ["event_time", "user_key", "user_key_type", "item_id", "event_type", "quantity"]
    files = sorted(p for p in settings.events_dir.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        return schema.EVENT_SCHEMA.empty_table().select(columns).to_pandas()
    dataset = ds.dataset(files, schema=schema.EVENT_SCHEMA, format="parquet")
    wanted = ds.field("event_type").isin(["purchase", "view"]) & ds.field("item_id").is_valid()
    return dataset.to_table(columns=columns, filter=wanted).to_pandas()


def build_daily_sales(
    events: pd.DataFrame, items: pd.DataFrame, prices: pd.DataFrame, inventory: pd.DataFrame
) -> pd.DataFrame:
    """One row per (item, day) of the price book with units, censoring and point-in-time features.

    `events` needs event_time, user_key, user_key_type, item_id, event_type, quantity (other event
    types are ignored); the other frames follow siyu/data/schema.py. Units are purchased quantity
    over all channels; refunds are not subtracted because demand is what people chose to buy.
    """
    if prices.empty:
        raise ValueError("the price book is empty: the demand model needs one row per item and day")
    book = prices.assign(date=pd.to_datetime(prices["date"]).dt.normalize())
    item_index = pd.Index(pd.unique(book["item_id"]), name="item_id")
    first = book["date"].min()
    n_days = int((book["date"].max() - first).days) + 1
    dates = pd.date_range(first, periods=n_days, freq="D")
    grid = _Grid(item_index, first, n_days)

    price = grid.values(book, "price")
    in_book = ~np.isnan(price)
    # A hole in the book keeps the last price; days before a SKU's first row are dropped at the end.
    price = pd.DataFrame(price).ffill(axis=1).bfill(axis=1).to_numpy()
    promo = np.nan_to_num(grid.values(book.assign(on_promotion=book["on_promotion"].astype(float)), "on_promotion"))
    promo = promo.astype(bool)
    stock = grid.values(inventory.assign(date=pd.to_datetime(inventory["date"]).dt.normalize()), "stock")

    meta = items.drop_duplicates("item_id").set_index("item_id").reindex(item_index)
    list_price = meta["list_price"].to_numpy(dtype=float)
    launch_price = price[np.arange(len(item_index)), in_book.argmax(axis=1)]  # known from the first day on
    list_price = np.where(np.isfinite(list_price) & (list_price > 0), list_price, launch_price)
    category = meta["category_id"].fillna("unknown").to_numpy(dtype=object)

    sales = _sales_events(events, item_index)
    units = grid.count(sales["purchases"], "quantity")
    views = grid.count(sales["views"], None)
    reference = reference_prices(price, promo, list_price)
    censored = np.isfinite(stock) & ((stock <= 0) | (units >= stock))

    frame = pd.DataFrame(
        {
            "item_id": np.repeat(item_index.to_numpy(dtype=object), n_days),
            "category_id": np.repeat(category, n_days),
            "date": np.tile(dates.date, len(item_index)),
            "units": units.ravel().astype(np.int64),
            "price": price.ravel(),
            "on_promotion": promo.ravel(),
            "list_price": np.repeat(list_price, n_days),
            "reference_price": reference.ravel(),
            "stock": stock.ravel(),
            "censored": censored.ravel(),
            "views": views.ravel().astype(np.int64),
            "log_price_ratio": np.log(price / reference).ravel(),
            "weekday": np.tile(dates.weekday.to_numpy(), len(item_index)),
            "trend": np.tile(np.arange(n_days, dtype=float), len(item_index)),
            "buyer_frequency": buyer_frequency(sales["purchases"], item_index, first, n_days).ravel(),
            "turnover": turnover(units, stock).ravel(),
        }
    )
    return frame.loc[in_book.ravel(), list(SALES_COLUMNS)].reset_index(drop=True)


class _Grid:
    """Dense item x day arrays: day t of item i at [i, t], NaN where a table has no row."""

    def __init__(self, item_index: pd.Index, first: pd.Timestamp, n_days: int) -> None:
        self.item_index, self.first, self.n_days = item_index, first, n_days

    def _cells(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self.item_index.get_indexer(table["item_id"])
        day = ((table["date"] - self.first) // pd.Timedelta(days=1)).to_numpy()
        ok = (rows >= 0) & (day >= 0) & (day < self.n_days)
        return rows, day, ok

    def values(self, table: pd.DataFrame, column: str) -> np.ndarray:
        out = np.full((len(self.item_index), self.n_days), np.nan)
        if table.empty:
            return out
        rows, day, ok = self._cells(table)
        out[rows[ok], day[ok]] = table[column].to_numpy(dtype=float)[ok]
        return out

    def count(self, table: pd.DataFrame, weight: str | None) -> np.ndarray:
        out = np.zeros((len(self.item_index), self.n_days))
        if table.empty:
            return out
        rows, day, ok = self._cells(table)
        w = np.ones(len(table)) if weight is None else table[weight].to_numpy(dtype=float)
        np.add.at(out, (rows[ok], day[ok]), w[ok])
        return out


def _sales_events(events: pd.DataFrame, item_index: pd.Index) -> dict[str, pd.DataFrame]:
    """Purchases (with a buyer key) and views, dated by their UTC day."""
    kept = events[events["item_id"].isin(item_index) & events["event_type"].isin(["purchase", "view"])]
    when = pd.to_datetime(kept["event_time"], utc=True).dt.tz_localize(None).dt.normalize()
    kept = kept.assign(date=when)
    purchases = kept[kept["event_type"] == "purchase"]
    # Raw identifiers, not resolved user ids: identity resolution uses links from any time, so it is not
    # point-in-time, and the frequency feature only needs to be consistent, not exact per person.
    buyer = purchases["user_key_type"].astype(str) + ":" + purchases["user_key"].astype(str)
    purchases = purchases.assign(buyer=buyer.to_numpy(), quantity=purchases["quantity"].astype(float))
    return {"purchases": purchases, "views": kept[kept["event_type"] == "view"]}


def reference_prices(price: np.ndarray, promo: np.ndarray, list_price: np.ndarray) -> np.ndarray:
    """Each day's regular price: the modal non-promotion price of the previous four weeks.

    Modal rather than last, so a one-day unflagged discount in imported data does not move it;
    ties go to the most recent price. Day 0 (no history) uses today's price unless on
    promotion, else the list price.
    """
    n_items, n_days = price.shape
    regular = np.where(promo, np.nan, price)
    fallback = np.where(promo[:, 0], list_price, price[:, 0])
    out = np.empty_like(price)
    last = fallback.copy()
    for day in range(n_days):
        window = regular[:, max(0, day - REFERENCE_WINDOW_DAYS) : day]
        if window.shape[1]:
            counts = (window[:, :, None] == window[:, None, :]).sum(axis=2).astype(float)
            counts += np.arange(window.shape[1]) * 1e-3  # ties: the latest occurrence wins
            best = window[np.arange(n_items), counts.argmax(axis=1)]
            last = np.where(np.isfinite(best), best, last)  # a window all on promotion keeps the last regular
        out[:, day] = last
    return out


def buyer_frequency(purchases: pd.DataFrame, item_index: pd.Index, first: pd.Timestamp, n_days: int) -> np.ndarray:
    """Mean purchases per buyer over the last 30 days among those who bought the SKU in those days.

    A SKU bought by frequent shoppers (a staple) sells on another rhythm than an occasional buy. NaN when
    nobody bought the SKU in the window: the model imputes, so no invented zero reaches it.
    """
    out = np.full((len(item_index), n_days), np.nan)
    if purchases.empty:
        return out
    day = ((purchases["date"] - first) // pd.Timedelta(days=1)).to_numpy()
    rows = item_index.get_indexer(purchases["item_id"])
    frame = pd.DataFrame({"row": rows, "buyer": purchases["buyer"].to_numpy(), "day": day})
    for d in range(1, n_days):
        window = frame[(frame["day"] < d) & (frame["day"] >= d - FREQUENCY_WINDOW_DAYS)]
        if window.empty:
            continue
        per_buyer = window.groupby("buyer").size()
        pairs = window[["row", "buyer"]].drop_duplicates()
        mean = per_buyer.reindex(pairs["buyer"]).to_numpy(dtype=float)
        by_item = pd.Series(mean).groupby(pairs["row"].to_numpy()).mean()
        out[by_item.index.to_numpy(), d] = by_item.to_numpy()
    return out


def turnover(units: np.ndarray, stock: np.ndarray) -> np.ndarray:
    """Units sold over the last four weeks per unit of average stock held (NaN without history)."""
    sold = _trailing_sum(units)
    known = np.isfinite(stock)
    held = _trailing_sum(np.where(known, stock, 0.0))
    days = _trailing_sum(known.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        average_stock = held / days
        out = sold / np.maximum(average_stock, 1.0)
    return np.where(days > 0, out, np.nan)


def _trailing_sum(values: np.ndarray, window: int = TURNOVER_WINDOW_DAYS) -> np.ndarray:
    """Sum over the `window` days strictly before each day."""
    cum = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(values, axis=1)], axis=1)
    lagged = np.zeros_like(cum)
    lagged[:, window:] = cum[:, :-window]
    return (cum - lagged)[:, :-1]
