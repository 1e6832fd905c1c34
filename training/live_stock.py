"""Stock left at the moment of a view: the day's stock count minus the units sold since it.

Item snapshots carry the stock counted at midnight (UTC, `features.build`); by evening a popular
item may have sold out, and a view of a sold-out item cannot convert. In the synthetic world a
quarter of the holdout's views are of items that sold out during the day, and the brand knows it:
its own purchases are in the event log as they happen. So the conversion model reads how many units
were bought since the count and strictly before the view (`units_sold_since_count`), and the stock
that leaves (`stock_left`, missing where the log has no stock count, as imported logs have none).
On the 30k-user benchmark world the two raise holdout AUC from 0.7749 to 0.7837.

Training counts per impression (`units_sold_before`); serving counts, per catalogue item, every
logged purchase since the item's snapshot (a request's `now` is after all of them) plus the purchases
stored since the log's views were built. Both go through `units_sold_before`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LIVE_STOCK_FEATURES = ("units_sold_since_count", "stock_left")
DAY_NS = 86_400 * 10**9


def purchases_of(events: pd.DataFrame) -> pd.DataFrame:
    """The purchase events with an item, as (item_id, event_time, quantity)."""
    bought = events[(events["event_type"] == "purchase") & events["item_id"].notna()]
    return bought[["item_id", "event_time", "quantity"]]


def units_sold_before(
    purchases: pd.DataFrame, item_ids: np.ndarray, since: np.ndarray, until: np.ndarray
) -> np.ndarray:
    """(n,) float: units of `item_ids[i]` bought at or after `since[i]` and strictly before `until[i]`.

    `purchases` has item_id, event_time and quantity; `since` and `until` are epoch nanoseconds (int64).
    Two as-of joins on the items' running totals: the total strictly before `until` minus the total
    strictly before `since`.
    """
    n = len(item_ids)
    if n == 0 or purchases.empty:
        return np.zeros(n)
    sold = purchases.assign(t=epoch_ns(purchases["event_time"]), item_id=purchases["item_id"].astype(str))
    sold = sold.sort_values(["item_id", "t"], kind="stable")
    sold["total"] = sold.groupby("item_id", sort=False)["quantity"].cumsum().astype(float)
    running = sold[["item_id", "t", "total"]].sort_values("t", kind="stable")
    ids = pd.Series(item_ids, dtype=object).astype(str).to_numpy()
    return _total_before(running, ids, np.asarray(until, dtype=np.int64)) - _total_before(
        running, ids, np.asarray(since, dtype=np.int64)
    )


def live_stock_columns(stock: np.ndarray, units_sold: np.ndarray) -> dict[str, np.ndarray]:
    """LIVE_STOCK_FEATURES from the counted stock (NaN = not counted) and the units sold since the count."""
    units = np.asarray(units_sold, dtype=float)
    return {"units_sold_since_count": units, "stock_left": np.asarray(stock, dtype=float) - units}


def stock_count_ns(view_ns: np.ndarray) -> np.ndarray:
    """When the stock each view's snapshot carries was counted (epoch ns): the midnight (UTC) that began its day."""
    view_ns = np.asarray(view_ns, dtype=np.int64)
    return view_ns - view_ns % DAY_NS


def _total_before(running: pd.DataFrame, item_ids: np.ndarray, at_ns: np.ndarray) -> np.ndarray:
    asked = pd.DataFrame({"item_id": item_ids, "t": at_ns, "_row": np.arange(item_ids.size)}).sort_values("t")
    found = pd.merge_asof(asked, running, on="t", by="item_id", allow_exact_matches=False, direction="backward")
    out = np.zeros(item_ids.size)
    out[found["_row"].to_numpy()] = found["total"].fillna(0.0).to_numpy()
    return out


def epoch_ns(times: pd.Series) -> np.ndarray:
    """Epoch nanoseconds (int64) of a datetime column, naive ones read as UTC."""
    return pd.to_datetime(times, utc=True).to_numpy(dtype="datetime64[ns]").astype(np.int64)
