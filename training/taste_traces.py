"""The user's taste for an item's category, estimated from everything they did before an impression.

In the world (as in a real shop) three quarters of the variation in a user's taste for an item is
taste for its category, and a user's views reveal it: people look at what they like. The feature
store's 30-day user x category counts forget a user's taste within a month and never compare it to
the user's whole activity; these features read the whole log before the impression: how often the
user viewed and bought in this category and overall, the category's share of their views, and their
conversion rates in the category and overall. On the 12k-user world they add about +0.002 holdout
AUC on top of the feature store's counts (0.7808 -> 0.7827); an all-history factorisation of
purchase outcomes added +0.0007 and was left out.

Training counts over the log (`taste_traces`); serving counts over one user's slice (`traces_at`);
both go through `_with_rates`, and tests hold the two forms equal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.impression_history import counts_before

TASTE_FEATURES = (
    "category_views_before",
    "category_purchases_before",
    "user_views_before",
    "user_purchases_before",
    "category_view_share_before",
    "category_purchase_rate_before",
    "user_purchase_rate_before",
)
_TRACED = ("view", "purchase")


def taste_traces(events: pd.DataFrame, impressions: pd.DataFrame) -> pd.DataFrame:
    """TASTE_FEATURES for each impression (same index), counting events strictly before it.

    `events` has user_id, category_id, event_type and event_time (items without a category count under
    their category_id as given, "unknown" say); `impressions` has user_id, category_id and event_timestamp.
    """
    traced = events[events["event_type"].isin(_TRACED) & events["category_id"].notna()]
    in_category, _ = counts_before(traced, impressions, ("user_id", "category_id"), time_of_last=False, kinds=_TRACED)
    overall, _ = counts_before(traced, impressions, ("user_id",), time_of_last=False, kinds=_TRACED)
    columns = _with_rates(in_category["view"], in_category["purchase"], overall["view"], overall["purchase"])
    return pd.DataFrame(columns, index=impressions.index)[list(TASTE_FEATURES)].astype(np.float32)


def traces_at(past_category: np.ndarray, past_kind: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """(len(categories), TASTE_FEATURES) float32 for one user: `past_*` are their events before the request."""
    views, purchases = past_kind == "view", past_kind == "purchase"
    codes, seen = pd.factorize(past_category)  # a missing category is code -1: counted overall, in no category
    at = pd.Index(seen).get_indexer(categories)

    def in_category(kind: np.ndarray) -> np.ndarray:
        counts = np.bincount(codes[codes >= 0], weights=kind[codes >= 0], minlength=len(seen))
        return np.where(at >= 0, counts[np.maximum(at, 0)] if len(seen) else 0.0, 0.0)

    n = len(categories)
    columns = _with_rates(
        in_category(views),
        in_category(purchases),
        np.full(n, views.sum(), dtype=np.float64),
        np.full(n, purchases.sum(), dtype=np.float64),
    )
    return np.column_stack([columns[name] for name in TASTE_FEATURES]).astype(np.float32)


def _with_rates(
    category_views: np.ndarray, category_purchases: np.ndarray, views: np.ndarray, purchases: np.ndarray
) -> dict[str, np.ndarray]:
    """Counts and their ratios; a ratio over nothing is missing (LightGBM's own branch), not zero."""

    def ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        top, bottom = np.asarray(top, dtype=np.float64), np.asarray(bottom, dtype=np.float64)
        return np.divide(top, bottom, out=np.full(top.shape, np.nan), where=bottom > 0)

    return {
        "category_views_before": category_views,
        "category_purchases_before": category_purchases,
        "user_views_before": views,
        "user_purchases_before": purchases,
        "category_view_share_before": ratio(category_views, views),
        "category_purchase_rate_before": ratio(category_purchases, category_views),
        "user_purchase_rate_before": ratio(purchases, views),
    }
