"""Units sold since the stock count, as training counts them per view, against a count row by row."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from training.live_stock import (
    DAY_NS,
    epoch_ns,
    live_stock_columns,
    purchases_of,
    stock_count_ns,
    units_sold_before,
)

START = pd.Timestamp("2026-03-01", tz="UTC")
ITEMS = ["a", "b", "c"]
MINUTES = st.integers(0, 3 * 24 * 60)  # three days: views and purchases on either side of midnights


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    bought=st.lists(st.tuples(st.sampled_from(ITEMS), MINUTES, st.integers(1, 4)), max_size=30),
    views=st.lists(st.tuples(st.sampled_from([*ITEMS, "never-bought"]), MINUTES), min_size=1, max_size=20),
)
def test_units_sold_since_the_days_count_and_strictly_before_the_view(bought, views) -> None:
    purchases = pd.DataFrame(
        {
            "item_id": [item for item, _, _ in bought],
            "event_time": [START + pd.Timedelta(minutes=m) for _, m, _ in bought],
            "quantity": np.array([q for _, _, q in bought], dtype=np.int32),
        }
    )
    view_ns = epoch_ns(pd.Series([START + pd.Timedelta(minutes=m) for _, m in views]))
    item_ids = np.array([item for item, _ in views], dtype=object)
    counted = units_sold_before(purchases, item_ids, stock_count_ns(view_ns), view_ns)

    bought_ns = epoch_ns(purchases["event_time"]) if bought else np.zeros(0, dtype=np.int64)
    for i, (item, at) in enumerate(zip(item_ids, view_ns, strict=True)):
        midnight = at - at % DAY_NS
        same = (purchases["item_id"].to_numpy() == item) & (bought_ns >= midnight) & (bought_ns < at)
        assert counted[i] == purchases["quantity"].to_numpy()[same].sum()


def test_stock_left_is_the_count_less_the_sales_and_unknown_without_a_count() -> None:
    columns = live_stock_columns(np.array([5.0, np.nan, 1.0]), np.array([2.0, 3.0, 1.0]))
    np.testing.assert_array_equal(columns["units_sold_since_count"], [2.0, 3.0, 1.0])
    np.testing.assert_array_equal(columns["stock_left"], [3.0, np.nan, 0.0])


def test_only_purchases_of_an_item_count_as_sales() -> None:
    events = pd.DataFrame(
        {
            "item_id": ["a", "a", None, "b"],
            "event_type": ["view", "purchase", "purchase", "add_to_cart"],
            "event_time": [START] * 4,
            "quantity": [1, 2, 1, 1],
        }
    )
    assert purchases_of(events).to_dict("list") == {"item_id": ["a"], "event_time": [START], "quantity": [2]}
    assert units_sold_before(purchases_of(events.iloc[:0]), np.array(["a"]), np.array([0]), np.array([1])) == 0
