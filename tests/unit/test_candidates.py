"""How /recommend merges its retrieval sources into one candidate list."""

from __future__ import annotations

import pandas as pd

from serving.recommend.catalog import Catalog, Source
from serving.recommend.paths import DecisionPaths, PathSuggestions
from training.dataset import ITEM_MODEL_FEATURES


def _catalog(in_stock: list[bool]) -> Catalog:
    items = pd.DataFrame(
        {"item_id": [f"i{n}" for n in range(len(in_stock))], "category_id": "c", "price": 1.0, "in_stock": in_stock}
    )
    for feature in ITEM_MODEL_FEATURES:
        items[feature] = 0.0
    return Catalog.from_items(items)


def test_proposals_come_first_then_popular_items_without_repeats() -> None:
    catalog = _catalog([True, True, True, False, True, True])
    rows, reasons = catalog.candidate_rows(
        (["i4", "i3", "nope", "i4"], Source.NEXT_ON_PATH), (["i0", "i4"], Source.CO_OCCURRING)
    )
    ids = [catalog.in_stock["item_id"][r] for r in rows]
    assert ids == ["i4", "i0", "i1", "i2", "i5"]  # i3 is out of stock; unknown ids and repeats are dropped
    assert reasons.tolist() == [
        Source.NEXT_ON_PATH,
        Source.CO_OCCURRING,
        Source.POPULAR,
        Source.POPULAR,
        Source.POPULAR,
    ]


def test_nothing_in_stock_means_no_candidates() -> None:
    rows, reasons = _catalog([False, False]).candidate_rows((["i0"], Source.NEXT_ON_PATH))
    assert rows.size == 0 and reasons.size == 0


def test_paths_without_a_sequence_model_still_suggest_co_occurring_items(small_world) -> None:
    paths = DecisionPaths.from_store(small_world)
    busiest = str(paths.data.user_ids[paths.data.lengths.argmax()])
    suggestions = paths.suggest(busiest, 10)
    assert 0 < len(suggestions.co_occurring) <= 10 and set(suggestions.co_occurring) <= set(paths.item_ids)
    assert suggestions.next_items == [] and suggestions.intent is None
    assert suggestions.steps == paths.data.lengths.max()
    assert paths.suggest("nobody-we-know", 10) == PathSuggestions()


def test_price_ratios_of_zero_prices_are_missing_not_infinite() -> None:
    import numpy as np
    import pandas as pd

    from training.dataset import USER_CATEGORY_FEATURES, add_context_features

    frame = pd.DataFrame(
        {
            "price_shown": [10.0, 10.0],
            "list_price": [0.0, 20.0],
            "avg_paid_price_90d": [5.0, 0.0],
            "views_30d": [1.0, 0.0],
            "event_timestamp": pd.Timestamp("2026-03-01", tz="UTC"),
            "channel": "app",
            **{name: [0.0, 1.0] for name in USER_CATEGORY_FEATURES},
        }
    )
    out = add_context_features(frame)
    assert np.isnan(out["price_vs_list"].iat[0]) and out["price_vs_list"].iat[1] == 0.5
    assert out["price_vs_user_avg"].iat[0] == 2.0 and np.isnan(out["price_vs_user_avg"].iat[1])


def test_the_catalogue_codes_each_items_category_once_and_files_a_missing_one_as_unknown() -> None:
    import numpy as np

    items = _catalog([True, True, True, False]).items.assign(category_id=["c", None, "d", "e"])
    catalog = Catalog.from_items(items)
    assert catalog.categories == ["c", "unknown", "d"]  # the out-of-stock item's category is not read
    assert catalog.category_code == {"c": 0, "unknown": 1, "d": 2}
    np.testing.assert_array_equal(catalog.in_stock["category_code"], [0, 1, 2])
    assert catalog.row_of == {"i0": 0, "i1": 1, "i2": 2}
