"""The conversion model's input for one request: one row per candidate, columns in the champion's order.

Filled column by column from arrays (the candidates' item-table rows, the user's online row, their
engagement per category, the behaviour features from their slice of the log) with the derivations
training uses (`training.dataset.context_columns`). Building a DataFrame per request and deriving
columns through pandas cost several times the model's own prediction; this keeps the request's
work proportional to the numbers it needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from features.build import USER_CATEGORY_FEATURES
from training.dataset import CONTEXT_INPUTS, context_columns


@dataclass(frozen=True)
class CategoryEngagement:
    """The user's USER_CATEGORY_FEATURES per category, as the online store answered (None = no row)."""

    categories: pd.Index
    values: Mapping[str, Sequence[float | None]]  # feature -> one value per category

    @classmethod
    def none(cls) -> CategoryEngagement:
        """A user with no rows in force: every candidate's engagement is missing (0 once derived)."""
        return cls(pd.Index([]), {name: [] for name in USER_CATEGORY_FEATURES})

    def per_candidate(self, categories: np.ndarray) -> dict[str, np.ndarray]:
        """USER_CATEGORY_FEATURES for each candidate's category (NaN where the user has no row)."""
        at = self.categories.get_indexer(categories)
        found = at >= 0
        out = {}
        for name in USER_CATEGORY_FEATURES:
            read = np.asarray(self.values[name], dtype=float)  # None -> NaN
            column = np.full(categories.size, np.nan)
            column[found] = read[at[found]]
            out[name] = column
        return out


def candidate_matrix(
    features: Sequence[str],
    items: Mapping[str, np.ndarray],
    user: Mapping[str, float | None],
    engagement: Mapping[str, np.ndarray],
    behaviour: Mapping[str, np.ndarray],
    channel: str,
    now: datetime,
) -> np.ndarray:
    """(candidates, len(features)) float64 for LightGBM.

    `items`: the candidates' item-table columns (with `price`, shown as today's price); `user`: the
    user's online row (None = missing); `engagement`: USER_CATEGORY_FEATURES per candidate;
    `behaviour`: history and taste features per candidate.
    """
    n = items["price"].size
    user_values = {name: np.nan if value is None else float(value) for name, value in user.items()}
    shown = {"price_shown": items["price"]}

    def column(name: str) -> np.ndarray | float:
        for source in (behaviour, engagement, items, shown):
            if name in source:
                return source[name]
        return user_values[name]

    inputs = {name: np.broadcast_to(column(name), n) for name in CONTEXT_INPUTS}
    context = context_columns(inputs, np.full(n, pd.Timestamp(now).hour), np.full(n, channel, dtype=object))
    matrix = np.empty((n, len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        matrix[:, j] = context[name] if name in context else column(name)
    return matrix
