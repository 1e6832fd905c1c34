"""Taste traces count the user's views and purchases in a category strictly before each impression,
and the serving form (one user's slice) gives the training form's rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.test_impression_history import EVENTS, _impressions
from training.impression_history import UserEvents
from training.taste_traces import TASTE_FEATURES, taste_traces, traces_at

CATEGORY = {"a": "food", "b": "toys", "z": "food"}
LOG = EVENTS.assign(category_id=EVENTS["item_id"].map(CATEGORY))


def _shown(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    frame = _impressions(rows)
    return frame.assign(category_id=frame["item_id"].map(CATEGORY))


def test_counts_views_and_purchases_in_the_category_before_the_impression() -> None:
    shown = _shown([("u1", "z", "s2", 2 * 24 * 60), ("u1", "b", "s1", 3), ("u1", "a", "s1", 0), ("u2", "z", "s9", 60)])
    got = taste_traces(LOG, shown)
    assert list(got.columns) == list(TASTE_FEATURES)
    later, toys, first, other = (got.iloc[i] for i in range(4))
    # Two days on: u1 viewed a (food) once and b (toys) once, and bought a once; carts are not counted.
    assert later[["category_views_before", "category_purchases_before"]].tolist() == [1, 1]
    assert later[["user_views_before", "user_purchases_before"]].tolist() == [2, 1]
    assert later["category_view_share_before"] == pytest.approx(0.5)
    assert later["category_purchase_rate_before"] == pytest.approx(1.0)
    assert later["user_purchase_rate_before"] == pytest.approx(0.5)
    # b's own view is at the impression's instant: not before it, so no toys views yet.
    assert toys[["category_views_before", "user_views_before", "user_purchases_before"]].tolist() == [0, 1, 1]
    assert np.isnan(toys["category_purchase_rate_before"])  # a rate over no views is unknown, not zero
    assert first["user_views_before"] == 0 and np.isnan(first["user_purchase_rate_before"])
    assert other[["category_views_before", "user_views_before"]].tolist() == [1, 1]  # u2's own view of a only


def test_the_serving_form_equals_the_training_form() -> None:
    shown = _shown(
        [
            ("u1", "a", "s1", 0),
            ("u1", "b", "s1", 3),
            ("u1", "z", "s2", 2 * 24 * 60 + 6),
            ("u1", "b", "s-new", 3 * 24 * 60),
            ("u2", "a", "s3", 10.5),
        ]
    )
    trained = taste_traces(LOG, shown).to_numpy()
    for row, seen in shown.iterrows():
        past = UserEvents.of(LOG[LOG["user_id"] == seen["user_id"]]).before(seen["event_timestamp"].value)
        served = traces_at(past.category, past.kind, np.array([seen["category_id"]], dtype=object))
        np.testing.assert_allclose(served[0], trained[row], rtol=1e-6, err_msg=f"impression {row}")
