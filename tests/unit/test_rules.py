"""The rules stage on hand-made scored candidates: filters, diversity, promotion and exploration slots."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from serving.recommend.catalog import Source
from serving.recommend.rules import Rules, Scored, _quantile, apply_rules

# Ten candidates, best first by score: i0 (0.9) ... i9 (0.0); categories alternate a/b except i6-i9 (c).
N = 10


def _scored(promoted: tuple[int, ...] = (), new: tuple[int, ...] = (), views: list[float] | None = None) -> Scored:
    return Scored(
        item_id=np.asarray([f"i{n}" for n in range(N)], dtype=object),
        score=np.linspace(0.9, 0.0, N),
        reason=np.full(N, Source.POPULAR, dtype=object),
        category=np.asarray(["a", "b", "a", "b", "a", "b", "c", "c", "c", "c"], dtype=object),
        price=np.arange(N, dtype=float) * 10 + 5,  # 5, 15, ..., 95
        promoted=np.isin(np.arange(N), promoted),
        age_days=np.where(np.isin(np.arange(N), new), 3.0, 400.0),
        views_30d=np.asarray(views if views is not None else [100.0] * N),
    )


def _ids(items) -> list[str]:
    return [i.item_id for i in items]


def test_without_rules_the_best_scores_come_in_order() -> None:
    assert _ids(apply_rules(_scored(), Rules(), 4, set(), set())) == ["i0", "i1", "i2", "i3"]


def test_filters_by_category_and_price_and_recent_purchase_unless_due() -> None:
    rules = Rules(exclude_categories=["b"], min_price=10, max_price=80)
    assert _ids(apply_rules(_scored(), rules, 3, {"i2"}, set())) == ["i4", "i6", "i7"]
    assert _ids(apply_rules(_scored(), rules, 3, {"i2"}, {"i2"})) == ["i2", "i4", "i6"]
    only_c = Rules(categories=["c"], exclude_bought_within_days=0)
    assert _ids(apply_rules(_scored(), only_c, 10, set(), set())) == ["i6", "i7", "i8", "i9"]


def test_at_most_m_items_per_category() -> None:
    items = apply_rules(_scored(), Rules(max_per_category=1), 5, set(), set())
    assert _ids(items) == ["i0", "i1", "i6"]  # three categories: the list ends short rather than break the cap


def test_promoted_items_take_their_share_of_slots_spread_through_the_list() -> None:
    items = apply_rules(_scored(promoted=(8, 9)), Rules(promotion_share=0.2), 10, set(), set())
    promoted = [n for n, item in enumerate(items) if item.reason == Source.PROMOTED]
    assert {items[n].item_id for n in promoted} == {"i8", "i9"}
    assert promoted != [0, 1] and len(promoted) == 2 and promoted[1] - promoted[0] > 1


def test_exploration_prefers_new_items_then_the_least_viewed() -> None:
    new = apply_rules(_scored(new=(7,)), Rules(exploration_share=0.2), 5, set(), set())
    assert [i.item_id for i in new if i.reason == Source.NEW_ARRIVAL] == ["i7"]
    cold = apply_rules(_scored(views=[100] * 8 + [1, 2]), Rules(exploration_share=0.4), 5, set(), set())
    assert sorted(i.item_id for i in cold if i.reason == Source.EXPLORATION) == ["i8", "i9"]
    assert len(cold) == 5 and cold[0].item_id == "i0"


def test_a_price_range_upside_down_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"min_price 50\.0 is above max_price 10\.0"):
        Rules(min_price=50, max_price=10)


def test_a_tiers_playbook_fills_the_rules_the_request_left_unset() -> None:
    from serving.recommend.tier_strategy import DEFAULT_TIER_RULES, rules_for, tier_of

    requested = Rules.model_validate({"promotion_share": 0.1})
    silent = rules_for(tier_of({"value_tier_rank": 0.0}), requested, DEFAULT_TIER_RULES)
    assert silent.promotion_share == 0.1  # the request's own choice wins
    assert silent.exclude_bought_within_days == 0  # the playbook's win-back default fills the rest
    core = rules_for(tier_of({"value_tier_rank": 2.0}), Rules(), DEFAULT_TIER_RULES)
    assert core.exploration_share == 0.2 and core.new_item_days == 30
    assert rules_for(tier_of({"value_tier_rank": None}), Rules(), DEFAULT_TIER_RULES) == Rules()


@pytest.mark.parametrize(
    ("playbook", "message"),
    [({"vip": {}}, "unknown tier 'vip'"), ({"core": {"promotion_share": 2}}, "rules for 'core' are invalid")],
)
def test_a_broken_playbook_fails_at_start_up_naming_the_tier(playbook: dict, message: str) -> None:
    from serving.recommend.tier_strategy import checked_playbook

    with pytest.raises(ValueError, match=message):
        checked_playbook(playbook)


@given(st.lists(st.integers(0, 50), min_size=1, max_size=40), st.sampled_from([0.0, 0.2, 0.5, 1.0]))
def test_the_exploration_cut_is_numpys_quantile(views: list[int], q: float) -> None:
    values = np.asarray(views, dtype=float)
    assert _quantile(values, q) == pytest.approx(np.quantile(values, q))
