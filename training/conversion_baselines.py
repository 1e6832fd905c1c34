"""The strongest simple predictors of a purchase after a view, fitted on the training rows and scored on
the holdout rows the model is judged on, so "the model beats them" is a claim about the same rows.

- `item_conversion_rate`: the item's purchase rate among its training impressions, shrunk towards the
  overall rate by `PRIOR_VIEWS` pseudo-views (an item seen a few times is not 0% or 100%).
- `user_conversion_rate`: the user's own purchase rate among their training impressions, shrunk the same
  way: buyers keep buying, the strongest single signal on real logs.
- `user_item_history`: the purchase rate of training impressions with the same history with this item
  (viewed, carted, favourited, bought before: 16 cells), the best any predictor of those flags can do.
- `combined`: all three together, the item's rate times the user's and the history cell's lifts over
  the overall rate (independent evidence multiplied): what a merchandiser's "a buyer, a converting item,
  and they looked at it before" rule would rank.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.impression_history import counts_before

PRIOR_VIEWS = 20.0
HISTORY_FLAGS = ("item_views_before", "item_carts_before", "item_favourites_before", "item_purchases_before")


def favourites_before(events: pd.DataFrame, impressions: pd.DataFrame) -> np.ndarray:
    """How often the user favourited the item strictly before each impression (Taobao's `fav`)."""
    liked = events[(events["event_type"] == "favourite") & events["item_id"].notna()]
    counts, _ = counts_before(liked, impressions, ("user_id", "item_id"), time_of_last=False, kinds=("favourite",))
    return counts["favourite"]


def baseline_predictions(train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, np.ndarray]:
    """P(purchase) per holdout row from each baseline; both frames have user_id, item_id, label, HISTORY_FLAGS."""
    overall = float(train["label"].mean())
    item_scores = _shrunk_rate(train, holdout, train["item_id"], holdout["item_id"], PRIOR_VIEWS)
    user_scores = _shrunk_rate(train, holdout, train["user_id"], holdout["user_id"], PRIOR_VIEWS)
    # One pseudo-view: the 16 history cells hold many rows each.
    history_scores = _shrunk_rate(train, holdout, _history_cell(train), _history_cell(holdout), 1.0)
    combined = item_scores * (user_scores / overall) * (history_scores / overall) if overall > 0 else item_scores
    return {
        "item_conversion_rate": item_scores,
        "user_conversion_rate": user_scores,
        "user_item_history": history_scores,
        "combined": np.clip(combined, 0.0, 1.0),
    }


def _shrunk_rate(
    train: pd.DataFrame, holdout: pd.DataFrame, train_key: object, holdout_key: object, prior: float
) -> np.ndarray:
    """Each holdout row's key's purchase rate over the training rows, shrunk towards the overall rate by
    `prior` pseudo-rows; a key with no training rows gets the overall rate."""
    overall = float(train["label"].mean())
    per_key = train["label"].groupby(np.asarray(train_key)).agg(["sum", "count"])
    rate = (per_key["sum"] + prior * overall) / (per_key["count"] + prior)
    return pd.Series(np.asarray(holdout_key)).map(rate).fillna(overall).to_numpy(dtype=float)


def _history_cell(frame: pd.DataFrame) -> np.ndarray:
    """0..15: which of HISTORY_FLAGS are non-zero, as bits."""
    cell = np.zeros(len(frame), dtype=np.int64)
    for bit, flag in enumerate(HISTORY_FLAGS):
        cell |= (frame[flag].to_numpy(dtype=float) > 0).astype(np.int64) << bit
    return cell
