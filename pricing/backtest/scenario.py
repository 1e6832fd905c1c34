"""Backtest scenarios: a generated world's SKUs at a start day, with their stock, deliveries and true demand ahead.

A scenario is what every pricing policy in a backtest is given (the ladder, stock, known
deliveries, expiry, cost and salvage: all things the brand knows) plus the world's true demand
per period and ladder price, which only the oracle and the market simulation may read. The
ladder is the truth's own (multiples of list price), so the true demand at every price a policy
can choose is exact, not interpolated.

Per stock kind, what happens over the horizon:
- regular: sell the stock on hand; what is left is carried over, valued at cost (no deliveries
  are scheduled inside the horizon, because a top-up-to-target order depends on the prices set);
- perishable: a fresh batch of the item's batch size arrives on each batch day; at the end of a
  batch's shelf life what is left is written off (salvage value 0);
- seasonal: the stock on hand, sold until the sell-by day, then what is left goes to the outlet
  at the salvage value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from pricing.optimiser.problem import Objective, PricingProblem
from siyu.settings import Settings

KINDS: tuple[str, ...] = ("regular", "perishable", "seasonal")


@dataclass
class Scenario:
    """n SKUs x T periods x J ladder prices, from a start day of a generated world."""

    item_ids: np.ndarray
    category_ids: np.ndarray
    kind: np.ndarray  # regular | perishable | seasonal
    ladder: np.ndarray  # (n, J) ascending prices
    truth: np.ndarray  # (n, T, J) true expected units: for the oracle and the market only
    stock: np.ndarray  # (n,) on hand at the start (after that morning's delivery)
    arrivals: np.ndarray  # (n, T) deliveries at the start of each period (period 0's is in `stock`)
    expire: np.ndarray  # (n, T) what is on hand is written off at the end of the period
    cost: np.ndarray
    salvage: np.ndarray  # per unit left at expiry or at the end
    current_price: np.ndarray  # (n,) the price book's regular price at the start
    current_index: np.ndarray  # (n,) the ladder price nearest today's price (held by the "current" policy)
    history_units_per_day: np.ndarray  # (n,) observed sales rate before the start: fast vs slow movers
    start: date

    @property
    def horizon(self) -> int:
        return self.truth.shape[1]

    @property
    def supply(self) -> np.ndarray:
        return self.stock + self.arrivals.sum(axis=1)

    @property
    def cover(self) -> np.ndarray:
        """Periods of supply at the observed sales rate: high cover = more stock than the horizon sells."""
        rate = np.maximum(self.history_units_per_day, 1.0 / max(self.horizon, 1) / 10)
        return self.supply / rate / self.horizon

    def problem(
        self, demand: np.ndarray, objective: Objective = "revenue", allowed: np.ndarray | None = None
    ) -> PricingProblem:
        """The problem a policy solves with `demand` (n, T, J): the truth for the oracle, a forecast otherwise."""
        return PricingProblem(
            item_ids=self.item_ids,
            prices=self.ladder,
            demand=demand,
            stock=self.stock,
            cost=self.cost,
            salvage=self.salvage,
            current_price=self.ladder[np.arange(self.item_ids.size), self.current_index],
            arrivals=self.arrivals,
            expire=self.expire,
            objective=objective,
            allowed=allowed,
        )


def load_scenario(
    settings: Settings,
    start_day: int,
    horizon: int,
    skus: int | None = None,
    seed: int = 0,
    sales: pd.DataFrame | None = None,
) -> Scenario:
    """SKUs with something to sell at `start_day` of the world in `settings`, up to `skus` of them (seeded sample).

    `sales` is the daily sales panel (pricing.demand.sales.daily_sales) when the caller already has it.
    """
    truth_items = pd.read_parquet(settings.truth_items_path).set_index("item_id")
    items = pd.read_parquet(settings.items_path).set_index("item_id")
    start = world_calendar(settings)[0] + timedelta(days=start_day)
    days = [start + timedelta(days=t) for t in range(horizon)]
    demand = pd.read_parquet(settings.truth_demand_path, filters=[("date", ">=", start), ("date", "<=", days[-1])])
    covered = demand["date"].nunique()
    if covered < horizon:
        raise ValueError(
            f"the world's demand truth covers {covered} of the {horizon} days from {start}:"
            " generate a world with more days or start earlier"
        )
    inventory = pd.read_parquet(settings.inventory_path)
    inventory = inventory[inventory["date"] == start].set_index("item_id")
    prices = pd.read_parquet(settings.prices_path)
    history = _units_per_day(settings if sales is None else sales, start, start_day)

    ids = items.index.to_numpy()
    kind = truth_items.loc[ids, "kind"].to_numpy()
    stock = inventory["stock"].reindex(ids).fillna(0).to_numpy(np.int64)
    arrivals, expire = _deliveries(truth_items.loc[ids], kind, start_day, horizon)
    keep = (stock + arrivals.sum(axis=1)) > 0
    keep &= ~((kind == "seasonal") & (truth_items.loc[ids, "sell_by_day"].to_numpy() < start_day))
    rows = np.flatnonzero(keep)
    if skus is not None and skus < rows.size:
        rows = np.sort(np.random.default_rng(seed).choice(rows, skus, replace=False))
    if rows.size == 0:
        raise ValueError(f"no SKU has stock or deliveries from {start}: nothing to price")
    ids = ids[rows]

    truth, ladder = _truth_cube(demand, ids, days)
    book = prices[prices["date"] == start].set_index("item_id").reindex(ids)
    list_price = items.loc[ids, "list_price"].to_numpy()
    # A promotion is not today's regular price: hold the list-relative level without the promotion.
    current = np.where(book["on_promotion"].fillna(False).to_numpy(), list_price, book["price"].fillna(0).to_numpy())
    current = np.where(current > 0, current, list_price)
    current_index = np.abs(np.log(ladder) - np.log(current)[:, None]).argmin(axis=1)
    cost = items.loc[ids, "cost"].to_numpy(float)
    kind = kind[rows]
    salvage = np.where(kind == "regular", cost, np.nan_to_num(truth_items.loc[ids, "salvage_value"].to_numpy(float)))
    return Scenario(
        item_ids=ids,
        category_ids=items.loc[ids, "category_id"].to_numpy(),
        kind=kind,
        ladder=ladder,
        truth=truth,
        stock=stock[rows],
        arrivals=arrivals[rows],
        expire=expire[rows],
        cost=cost,
        salvage=salvage,
        current_price=current,
        current_index=current_index,
        history_units_per_day=history.reindex(ids).fillna(0.0).to_numpy(),
        start=start,
    )


def world_calendar(settings: Settings) -> tuple[date, int]:
    """The first day and the number of days of the generated world in `settings`."""
    world = json.loads(settings.truth_world_path.read_text())
    return date.fromisoformat(world["start"]), int(world["days"])


def _truth_cube(demand: pd.DataFrame, ids: np.ndarray, days: list[date]) -> tuple[np.ndarray, np.ndarray]:
    """(n, T, J) true units and the (n, J) ladder, from the long truth table."""
    frame = demand[demand["item_id"].isin(ids)]
    n_prices = frame["price_multiplier"].nunique()
    frame = frame.assign(row=pd.Index(ids).get_indexer(frame["item_id"])).sort_values(
        ["row", "date", "price_multiplier"]
    )
    truth = frame["expected_units"].to_numpy().reshape(len(ids), len(days), n_prices)
    ladder = frame["price"].to_numpy().reshape(len(ids), len(days), n_prices)[:, 0, :]
    return truth, ladder


def _deliveries(
    truth_items: pd.DataFrame, kind: np.ndarray, start_day: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scheduled batches of fresh food and the ends of batches and seasons, per period of the horizon."""
    day = start_day + np.arange(horizon)
    shelf = np.maximum(truth_items["shelf_life"].to_numpy(), 1)[:, None]
    fresh = (kind == "perishable")[:, None]
    batch = truth_items["target_stock"].to_numpy()[:, None]
    arrivals = np.where(fresh & (day % shelf == 0), batch, 0).astype(np.int64)
    arrivals[:, 0] = 0  # period 0's delivery is already in the opening stock
    expire = fresh & ((day + 1) % shelf == 0)
    expire |= (kind == "seasonal")[:, None] & (day == truth_items["sell_by_day"].to_numpy()[:, None])
    return arrivals, expire


def _units_per_day(source: Settings | pd.DataFrame, start: date, days_before: int) -> pd.Series:
    """Each SKU's observed units sold per day before the start (from the brand's events)."""
    from pricing.demand.sales import daily_sales

    sales = daily_sales(source) if isinstance(source, Settings) else source
    before = sales[sales["date"] < start]
    return before.groupby("item_id")["units"].sum() / max(days_before, 1)
