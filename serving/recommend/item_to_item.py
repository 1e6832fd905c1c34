"""/similar (item -> items) and /bought-together (basket -> items): neighbours, then the item's category.

Neighbours come from `RelatedItems` (the log's viewed-together and bought-together lists); an item the
log has too little of (new, or rarely touched) is filled from the most popular in-stock items of its
own category, so every known item gets an answer and every answer says which source gave it.
"""

from __future__ import annotations

from serving.recommend.catalog import Catalog, Recommendation
from serving.recommend.related import RelatedItem, RelatedItems

OVERFETCH = 3  # neighbours asked for per slot: some are out of stock or already in the basket


class UnknownItems(LookupError):
    """Ids neither the catalogue nor the event log knows."""

    def __init__(self, item_ids: list[str]) -> None:
        self.item_ids = item_ids
        listed = ", ".join(repr(i) for i in item_ids[:10]) + (" ..." if len(item_ids) > 10 else "")
        noun = "item" if len(item_ids) == 1 else "items"
        super().__init__(f"unknown {noun} {listed}: not in the item table or the event log")


def similar(
    related: RelatedItems | None, catalog: Catalog, item_id: str, k: int, in_stock_only: bool = True
) -> list[Recommendation]:
    """Items the users who touched `item_id` also touched, then popular items of its category."""
    _require_known(related, catalog, [item_id])
    found = related.viewed_with([item_id], k * OVERFETCH) if related is not None else []
    picked = _from_neighbours(found, catalog, k, in_stock_only, "viewed together with {}", exclude={item_id})
    return _fill_from_category(picked, catalog, [item_id], k, exclude={item_id})


def bought_together(
    related: RelatedItems | None, catalog: Catalog, basket: list[str], k: int, in_stock_only: bool = True
) -> list[Recommendation]:
    """Items bought by the buyers of the basket's items, then viewed together, then the basket's categories."""
    _require_known(related, catalog, basket)
    exclude = set(basket)
    picked: list[Recommendation] = []
    if related is not None:
        bought = related.bought_with(basket, k * OVERFETCH)
        picked = _from_neighbours(bought, catalog, k, in_stock_only, "bought together with {}", exclude)
        if len(picked) < k:
            exclude |= {r.item_id for r in picked}
            viewed = related.viewed_with(basket, k * OVERFETCH)
            picked += _from_neighbours(
                viewed, catalog, k - len(picked), in_stock_only, "viewed together with {}", exclude
            )
    return _fill_from_category(picked, catalog, basket, k, exclude)


def _require_known(related: RelatedItems | None, catalog: Catalog, item_ids: list[str]) -> None:
    unknown = [i for i in item_ids if i not in catalog.facts and (related is None or not related.knows(i))]
    if unknown:
        raise UnknownItems(unknown)


def _from_neighbours(
    found: list[RelatedItem], catalog: Catalog, k: int, in_stock_only: bool, reason: str, exclude: set[str]
) -> list[Recommendation]:
    picked = []
    for item in found:
        facts = catalog.facts.get(item.item_id)
        if item.item_id in exclude or (in_stock_only and (facts is None or not facts.in_stock)):
            continue
        picked.append(Recommendation(item.item_id, item.score, reason.format(item.because_of)))
        if len(picked) == k:
            break
    return picked


def _fill_from_category(
    picked: list[Recommendation], catalog: Catalog, asked: list[str], k: int, exclude: set[str]
) -> list[Recommendation]:
    """Top up with the asked items' categories' most popular in-stock items (score 0: no co-occurrence)."""
    taken = exclude | {r.item_id for r in picked}
    for item_id in asked:
        if len(picked) >= k:
            break
        facts = catalog.facts.get(item_id)
        if facts is None or facts.category_id is None:
            continue
        for other in catalog.popular_in(facts.category_id, k - len(picked), taken):
            picked.append(Recommendation(other, 0.0, f"popular in the same category as {item_id}"))
            taken.add(other)
    return picked[:k]
