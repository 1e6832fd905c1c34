"""The in-process item table serving reads instead of the online store, and how candidates are cut from it.

Feast's online read grows with the number of entity rows, so candidate items' features come from the
newest item snapshots held in memory (refreshed in the background), never from one read per item.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from features.repo import ITEM_VIEW, item_meta_path, source_paths
from siyu.settings import Settings
from training.codes import codes_of
from training.dataset import ITEM_MODEL_FEATURES
from training.live_stock import epoch_ns
from training.taste_traces import category_codes

MAX_CANDIDATES = 1000  # most popular in-stock items scored per request


class Source:
    """Why an item is a candidate, in the words the response gives; the first source to propose an item wins."""

    NEXT_ON_PATH = "likely next on the user's decision path"
    REPURCHASE = "due for repurchase"
    CO_OCCURRING = "often chosen with what the user looked at recently"
    NEW_ARRIVAL = "new arrival"
    PROMOTED = "promoted"
    EXPLORATION = "exploration"
    POPULAR = "popular in the last 30 days"
    RANKED = "ranked for this user by purchase probability"  # /rerank: the caller proposed it
    CALLER_ORDER = "in the caller's order: ranking unavailable"
    NOT_IN_STOCK = "not ranked: out of stock"
    UNKNOWN_ITEM = "not ranked: unknown to the item table"


@dataclass
class Recommendation:
    item_id: str
    score: float
    reason: str


@dataclass(frozen=True)
class ItemFacts:
    """What a response says about an item besides its score: apps show these without a second lookup."""

    category_id: str | None
    price: float | None
    in_stock: bool


def latest_item_table(settings: Settings) -> pd.DataFrame:
    """Newest snapshot per item, with its category, ordered by popularity (units then views, last 30 days)."""
    snapshots = pd.read_parquet(source_paths(settings)[ITEM_VIEW])
    latest = snapshots.sort_values("event_timestamp").groupby("item_id", as_index=False).last()
    first = snapshots.groupby("item_id")["event_timestamp"].min().reindex(latest["item_id"]).to_numpy()
    meta = pd.read_parquet(item_meta_path(settings))
    table = latest.assign(age_days=(latest["event_timestamp"].max() - first) / pd.Timedelta(days=1))
    table = table.merge(meta, on="item_id", how="left")
    table["in_stock"] = table["stock"].isna() | (table["stock"] > 0)
    return table.sort_values(["units_30d", "item_views_30d"], ascending=False, ignore_index=True)


@dataclass(frozen=True)
class Catalog:
    """The in-stock items as column arrays, most popular first, and an index from item id to row.

    Each request cuts its candidates from these arrays by row: building one DataFrame from arrays per
    request is far cheaper than inserting user columns into a frame one by one.
    """

    items: pd.DataFrame
    in_stock: dict[str, np.ndarray]  # with "category_code": each item's category as a position in `categories`
    rows: pd.Index  # item id (as text) -> row of in_stock
    categories: list[str]  # of the in-stock items, by code: one online read fetches the user's row for each

    @classmethod
    def from_items(cls, items: pd.DataFrame) -> Catalog:
        if "age_days" not in items:  # a table without item ages: nothing counts as new
            items = items.assign(age_days=np.inf)
        if "event_timestamp" in items:  # the snapshot's time: when its stock was counted
            items = items.assign(counted_ns=epoch_ns(items["event_timestamp"]))
        else:  # no snapshot time: no sale is known to have happened since the count
            items = items.assign(counted_ns=np.iinfo(np.int64).max)
        stocked = items[items["in_stock"]]
        names = ["item_id", "category_id", "price", "age_days", "counted_ns", *ITEM_MODEL_FEATURES]
        columns = {name: stocked[name].to_numpy() for name in names}
        # Coded once per catalogue: a request reads its candidates' codes instead of hashing their category ids.
        columns["category_code"], code_of = category_codes(stocked["category_id"])
        return cls(items, columns, pd.Index(stocked["item_id"].astype(str)), list(code_of))

    @cached_property
    def category_code(self) -> dict[str, int]:
        """Category id -> its position in `categories` (its code)."""
        return {category: code for code, category in enumerate(self.categories)}

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Item id (as text) -> row of in_stock: looks a few ids up faster than `rows.get_indexer`."""
        return {item: row for row, item in enumerate(self.rows)}

    @cached_property
    def facts(self) -> dict[str, ItemFacts]:
        """Every item's facts by id, out-of-stock items included (built on first use, once per catalogue)."""
        items = self.items
        return {
            str(item): ItemFacts(
                None if pd.isna(category) else str(category), None if pd.isna(price) else float(price), bool(stocked)
            )
            for item, category, price, stocked in zip(
                items["item_id"], items["category_id"], items["price"], items["in_stock"], strict=True
            )
        }

    def newest(self, n: int, max_age_days: float) -> list[str]:
        """Up to n in-stock items first on sale within `max_age_days`, newest first."""
        age = self.in_stock["age_days"]
        young = np.flatnonzero(age <= max_age_days)
        young = young[np.argsort(age[young], kind="stable")][:n]
        return [str(i) for i in self.in_stock["item_id"][young]]

    def promoted(self, overstock_days: float) -> np.ndarray:
        """(in-stock rows,) bool: on promotion, or with more days of cover than `overstock_days` (to move)."""
        cover = np.nan_to_num(self.in_stock["days_of_cover"].astype(float), nan=0.0)
        return (np.nan_to_num(self.in_stock["on_promotion"].astype(float)) > 0) | (cover > overstock_days)

    def most_promoted(self, n: int, overstock_days: float) -> list[str]:
        """Up to n promoted in-stock items, those with the most stock to move first."""
        rows = np.flatnonzero(self.promoted(overstock_days))
        cover = np.nan_to_num(self.in_stock["days_of_cover"][rows].astype(float), nan=0.0)
        return [str(i) for i in self.in_stock["item_id"][rows[np.argsort(-cover, kind="stable")][:n]]]

    def popular_in(self, category: str | None, n: int, exclude: set[str]) -> list[str]:
        """The n most popular in-stock items of `category`, best first, none of `exclude`."""
        items = self.items
        same = items[(items["category_id"] == category) & items["in_stock"]]["item_id"].astype(str)
        return [item for item in same if item not in exclude][:n]

    def candidate_rows(self, *proposals: tuple[list[str], str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the in-stock items the (ids, reason) proposals name, then the most popular, without repeats.

        Items out of stock or unknown to the catalogue are dropped; each kept row has its first proposer's reason
        (an object array, so later filters index it as they index the rows).
        """
        popular = np.arange(min(MAX_CANDIDATES, len(self.rows)))
        named = [codes_of(ids, self.row_of) for ids, _ in proposals]
        rows = np.concatenate([*named, popular])
        labels = np.array([reason for _, reason in proposals] + [Source.POPULAR], dtype=object)
        proposer = np.repeat(np.arange(len(labels)), [*(found.size for found in named), popular.size])
        kept = rows >= 0
        rows, proposer = rows[kept], proposer[kept]
        _, first = np.unique(rows, return_index=True)  # each row's first proposal, in proposal order
        first.sort()
        return rows[first].astype(np.int64), labels[proposer[first]]
