"""/similar and /bought-together answers from a tiny log whose neighbours are known by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from serving.recommend.catalog import Catalog
from serving.recommend.item_to_item import UnknownItems, bought_together, similar
from serving.recommend.related import RelatedItems
from training.dataset import ITEM_MODEL_FEATURES

# Buyers of the kettle also buy tea; viewers of the kettle also view the toaster; the mug is never touched.
LOG = [
    ("u1", "kettle", "purchase"),
    ("u1", "tea", "purchase"),
    ("u2", "kettle", "purchase"),
    ("u2", "tea", "purchase"),
    ("u2", "toaster", "view"),
    ("u3", "kettle", "view"),
    ("u3", "toaster", "view"),
    ("u4", "soap", "view"),
]


def _catalog(out_of_stock: tuple[str, ...] = ()) -> Catalog:
    ids = ["kettle", "tea", "toaster", "mug", "soap", "cup"]
    items = pd.DataFrame(
        {
            "item_id": ids,
            "category_id": ["kitchen", "drinks", "kitchen", "kitchen", "bath", "kitchen"],
            "price": [99.0, 25.0, 199.0, 15.0, 5.0, 9.0],
            "in_stock": [i not in out_of_stock for i in ids],
        }
    )
    for feature in ITEM_MODEL_FEATURES:
        items[feature] = 0.0
    return Catalog.from_items(items)


@pytest.fixture
def related() -> RelatedItems:
    return RelatedItems(pd.DataFrame(LOG, columns=["user_id", "item_id", "event_type"]))


def test_similar_items_are_the_ones_touched_by_the_same_users(related: RelatedItems) -> None:
    found = similar(related, _catalog(), "toaster", k=2)
    assert [r.item_id for r in found] == ["kettle", "tea"]
    assert all(r.reason == "viewed together with toaster" for r in found)
    assert found[0].score > found[1].score > 0


def test_an_item_nobody_touched_gets_its_categorys_best_sellers(related: RelatedItems) -> None:
    found = similar(related, _catalog(), "mug", k=3)
    assert [r.item_id for r in found] == ["kettle", "toaster", "cup"]
    assert {r.reason for r in found} == {"popular in the same category as mug"}


def test_out_of_stock_neighbours_are_skipped_unless_asked_for(related: RelatedItems) -> None:
    catalog = _catalog(out_of_stock=("kettle",))
    assert "kettle" not in [r.item_id for r in similar(related, catalog, "toaster", k=3)]
    assert similar(related, catalog, "toaster", k=1, in_stock_only=False)[0].item_id == "kettle"


def test_bought_together_prefers_co_purchases_and_never_returns_the_basket(related: RelatedItems) -> None:
    found = bought_together(related, _catalog(), ["kettle"], k=3)
    assert found[0].item_id == "tea" and found[0].reason == "bought together with kettle"
    assert found[1].item_id == "toaster" and found[1].reason == "viewed together with kettle"
    assert "kettle" not in [r.item_id for r in found]
    assert len({r.item_id for r in found}) == len(found) == 3


def test_unknown_ids_are_named(related: RelatedItems) -> None:
    with pytest.raises(UnknownItems, match="unknown items 'nope', 'nada'"):
        bought_together(related, _catalog(), ["kettle", "nope", "nada"], k=3)
    with pytest.raises(UnknownItems, match="unknown item 'nope'"):
        similar(related, _catalog(), "nope", k=3)


def test_without_a_log_known_items_still_get_their_category(related: RelatedItems) -> None:
    found = similar(None, _catalog(), "kettle", k=2)
    assert [r.item_id for r in found] == ["toaster", "mug"]
