"""The simple conversion baselines learn from the training rows only and rank what they should."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.conversion_baselines import HISTORY_FLAGS, PRIOR_VIEWS, baseline_predictions, favourites_before

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def _rows(items: list[str], labels: list[int], carted: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame({"user_id": "u", "item_id": items, "label": labels})
    for flag in HISTORY_FLAGS:
        frame[flag] = 0.0
    frame["item_carts_before"] = np.asarray(carted, dtype=float)
    return frame


def test_item_rate_is_shrunk_and_history_cells_come_from_training_rows() -> None:
    train = _rows(["a"] * 10 + ["b"] * 10, [1] * 5 + [0] * 5 + [0] * 10, [1] * 5 + [0] * 15)
    holdout = _rows(["a", "b", "new"], [1, 0, 0], [1, 0, 0])
    got = baseline_predictions(train, holdout)
    overall = 5 / 20
    assert got["item_conversion_rate"][0] == (5 + PRIOR_VIEWS * overall) / (10 + PRIOR_VIEWS)
    assert got["item_conversion_rate"][2] == overall  # an item with no training rows gets the overall rate
    carted, not_carted = got["user_item_history"][0], got["user_item_history"][1]
    assert carted > overall > not_carted  # every carted training row converted, no uncarted one did
    assert got["combined"][0] > got["combined"][1]
    assert (got["user_conversion_rate"] == got["user_conversion_rate"][0]).all()  # one user: one rate
    assert all(((p >= 0) & (p <= 1)).all() for p in got.values())


def test_favourites_count_only_earlier_favourites_of_the_same_item() -> None:
    events = pd.DataFrame(
        {
            "user_id": ["u", "u", "u", "v"],
            "item_id": ["a", "a", "b", "a"],
            "event_type": ["favourite", "view", "favourite", "favourite"],
            "event_time": T0 + pd.to_timedelta([0, 1, 2, 0], unit="h"),
        }
    )
    shown = pd.DataFrame(
        {
            "user_id": ["u", "u", "u"],
            "item_id": ["a", "a", "b"],
            "event_timestamp": T0 + pd.to_timedelta([0, 5, 1], unit="h"),
        }
    )
    assert favourites_before(events, shown).tolist() == [0, 1, 0]
