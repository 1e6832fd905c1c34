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
from features.online_rows import OnlineRow
from training.dataset import CONTEXT_INPUTS, context_columns


@dataclass(frozen=True)
class CategoryEngagement:
    """The user's USER_CATEGORY_FEATURES per catalogue category code, as the online store answered (NaN = no row)."""

    values: Mapping[str, np.ndarray]  # feature -> one value per category code; empty: the user has no rows at all

    @classmethod
    def none(cls) -> CategoryEngagement:
        """A user with no rows in force: every candidate's engagement is missing (0 once derived)."""
        return cls({})

    @classmethod
    def read(cls, rows: Sequence[OnlineRow | None]) -> CategoryEngagement:
        """From the store's rows for the catalogue's categories, in code order (None: no row)."""
        found = {f: [row.values[f] if row else None for row in rows] for f in USER_CATEGORY_FEATURES}
        return cls({f: np.array(values, dtype=float) for f, values in found.items()})  # None -> NaN

    def per_candidate(self, category_codes: np.ndarray) -> dict[str, np.ndarray]:
        """USER_CATEGORY_FEATURES for each candidate's category code (NaN where the user has no row)."""
        if not self.values:
            return {name: np.full(category_codes.size, np.nan) for name in USER_CATEGORY_FEATURES}
        return {name: self.values[name][category_codes] for name in USER_CATEGORY_FEATURES}


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
    context = context_columns(inputs, np.asarray(pd.Timestamp(now).hour), np.asarray(channel, dtype=object))
    matrix = np.empty((n, len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        matrix[:, j] = context[name] if name in context else column(name)
    return matrix
