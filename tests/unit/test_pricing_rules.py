"""Pricing rules and ladders: no optimised price ever breaks a rule, conflicts are named, binding rules are named.

The property test checks every rule with predicates written here from the rule definitions, not with the masks
the optimiser uses, over random rule sets, random demand and simulated closed-loop paths.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pricing.optimiser.ladder import DEFAULT_MULTIPLIERS, apply_endings, has_ending, price_ladder
from pricing.optimiser.problem import PricingProblem
from pricing.optimiser.rules import PricingRules, RuleConflict, rule_arrays, rule_masks
from pricing.optimiser.solve import policy_index, solve

EPS = 1e-9

# --------------------------------------------------------------------------------------------------------------
# Ladders
# --------------------------------------------------------------------------------------------------------------


def test_default_ladder_spans_half_to_1_2_and_holds_todays_price() -> None:
    ladder = price_ladder(np.array([10.0, 99.9]))
    assert ladder.shape == (2, 15)
    np.testing.assert_allclose(ladder[0], np.round(10.0 * DEFAULT_MULTIPLIERS, 2))
    assert np.all(np.diff(ladder, axis=1) > 0)
    assert np.any(np.isclose(ladder[1], 99.9))


def test_ladder_with_endings_snaps_dedupes_and_pads() -> None:
    ladder = price_ladder(np.array([10.37, 3.0]), endings=(0.9, 0.99))
    for row in ladder:
        prices = row[np.isfinite(row)]
        assert np.all(np.diff(prices) > 0), "ascending without duplicates"
        assert np.all(has_ending(prices, (0.9, 0.99)))
    assert np.isnan(ladder[1, -1]), "the cheap SKU has fewer distinct prices after snapping: NaN padding"
    whole = price_ladder(np.array([10.37]), endings=(0.0,))
    assert np.all(whole[np.isfinite(whole)] == np.round(whole[np.isfinite(whole)]))


def test_apply_endings_picks_the_nearest_and_the_lower_on_a_tie() -> None:
    np.testing.assert_allclose(apply_endings(np.array([10.37, 10.95, 11.02, 0.2]), (0.9,)), [9.9, 10.9, 10.9, 0.9])
    np.testing.assert_allclose(apply_endings(np.array([10.5]), (0.0,)), [10.0])
    assert np.isnan(apply_endings(np.array([np.nan]), (0.9,))[0])


@pytest.mark.parametrize("endings", [(), (1.0,), (-0.1,), (0.995,), (float("nan"),)])
def test_bad_endings_are_rejected(endings: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="endings"):
        apply_endings(np.array([1.0]), endings)


def test_ladder_rejects_bad_current_prices() -> None:
    with pytest.raises(ValueError, match="current_price"):
        price_ladder(np.array([10.0, -1.0]))


# --------------------------------------------------------------------------------------------------------------
# Rules: validation and conflicts
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("floor", float("nan")),
        ("floor", -1.0),
        ("ceiling", 0.0),
        ("min_margin", -0.1),
        ("min_margin", float("inf")),
        ("max_change", 0.0),
        ("max_change", 1.5),
        ("endings", (1.2,)),
    ],
)
def test_pricing_rules_reject_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        PricingRules(**{field: value})


def masks_for(rules: PricingRules, ladder: list[float], cost: float = 1.0, current: float | None = None) -> object:
    prices = np.array([ladder])
    return rule_masks(
        np.array(["i7"]), prices, np.array([cost]), np.array([current or ladder[-1]]), **rule_arrays(rules, 1)
    )


def test_floor_above_ceiling_is_a_conflict_naming_both() -> None:
    with pytest.raises(RuleConflict, match=r"floor 12 > ceiling 10 for item i7") as err:
        masks_for(PricingRules(floor=12.0, ceiling=10.0), [9.0, 11.0])
    assert err.value.rules == ("floor", "ceiling")
    assert err.value.items == ("i7",)


def test_margin_above_ceiling_is_a_conflict() -> None:
    with pytest.raises(RuleConflict, match=r"min_margin 0.2 over cost 10 \(price >= 12\) > ceiling 11"):
        masks_for(PricingRules(min_margin=0.2, ceiling=11.0), [9.0, 10.5], cost=10.0)


def test_no_ladder_price_surviving_names_the_rules_and_the_ladder() -> None:
    with pytest.raises(RuleConflict) as err:
        masks_for(PricingRules(floor=9.5, min_margin=0.05), [5.0, 7.5, 9.9], cost=9.6)
    message = str(err.value)
    assert "no ladder price survives floor, min_margin for item i7: ladder 5..9.9, floor 9.5" in message
    assert "price >= 10.08" in message
    assert err.value.rules == ("floor", "min_margin")


def test_clearance_lifts_the_margin_rule() -> None:
    masks = masks_for(PricingRules(min_margin=0.5, allow_clearance=True), [5.0, 7.5, 9.9], cost=9.0)
    assert masks.static.all()


def test_todays_price_breaking_a_floor_still_needs_a_reachable_price() -> None:
    """Today 10 breaks the new floor 12; max_change 0.1 cannot reach 12 in one period: a conflict naming both."""
    with pytest.raises(RuleConflict, match="floor, max_change") as err:
        masks_for(PricingRules(floor=12.0, max_change=0.1), [8.0, 10.0, 12.0], current=10.0)
    assert err.value.rules == ("floor", "max_change")
    masks = masks_for(PricingRules(floor=11.0, max_change=0.1), [8.0, 10.0, 11.0], current=10.0)
    np.testing.assert_array_equal(masks.allowed_now[0], [False, False, True])


# --------------------------------------------------------------------------------------------------------------
# Binding rules
# --------------------------------------------------------------------------------------------------------------


def one_sku_problem(rules: PricingRules, stock: int = 5, current: float = 10.0) -> PricingProblem:
    """Demand so high at every price that the unconstrained optimum is the top rung; a little stock."""
    prices = np.array([[6.0, 8.0, 10.0, 12.0, 14.0]])
    demand = np.full((1, 4, 5), 50.0)
    return PricingProblem.from_rules(
        ["i1"], prices, demand, np.array([stock]), np.array([5.0]), np.array([0.0]), np.array([current]), rules
    )


@pytest.mark.parametrize(
    ("rules", "binding", "price"),
    [
        (PricingRules(), "", 14.0),
        (PricingRules(ceiling=11.0), "ceiling", 10.0),
        (PricingRules(markdown_only=True), "markdown_only", 10.0),
        (PricingRules(max_change=0.2), "max_change", 12.0),
        (PricingRules(ceiling=12.5, max_change=0.5, endings=(0.0,)), "ceiling", 12.0),
        # 14 would leave no price within 10% next period (12 and up are excluded): it is no option at all, so the
        # best price the rules exclude is 12, and only max_change excludes it.
        (PricingRules(ceiling=12.5, max_change=0.1), "max_change", 10.0),
        (PricingRules(floor=7.0), "", 14.0),
    ],
)
def test_binding_names_the_rules_that_exclude_the_unconstrained_best(
    rules: PricingRules, binding: str, price: float
) -> None:
    solution = solve(one_sku_problem(rules))
    assert solution.price_now[0] == price
    assert solution.binding[0] == binding


def test_binding_lists_every_rule_that_excludes_the_best_price_in_order() -> None:
    """A low optimum (overstock, no demand at high prices) excluded by both a floor and the endings rule."""
    prices = np.array([[5.5, 8.0, 10.0]])
    demand = np.array([[[30.0, 0.5, 0.1]]]).repeat(2, axis=1)
    problem = PricingProblem.from_rules(
        ["i1"], prices, demand, np.array([40]), np.array([1.0]), np.array([0.0]), np.array([10.0]),
        PricingRules(floor=6.0, endings=(0.0,)),
    )  # fmt: skip
    solution = solve(problem)
    assert solution.price_now[0] == 8.0
    assert solution.binding[0] == "floor,endings"


# --------------------------------------------------------------------------------------------------------------
# The property: no returned price ever breaks a rule
# --------------------------------------------------------------------------------------------------------------


def static_ok(price: float, rules: PricingRules, cost: float) -> bool:
    """The static rules, straight from their definitions."""
    if rules.floor is not None and price < rules.floor - EPS:
        return False
    if rules.ceiling is not None and price > rules.ceiling + EPS:
        return False
    if rules.min_margin is not None and not rules.allow_clearance and price < cost * (1 + rules.min_margin) - EPS:
        return False
    return rules.endings is None or round(price * 100) % 100 in {round(e * 100) for e in rules.endings}


def move_ok(price: float, previous: float, rules: PricingRules) -> bool:
    """The stateful rules, relative to the previous period's price (today's price before period 0)."""
    if rules.markdown_only and price > previous + EPS:
        return False
    return rules.max_change is None or abs(price - previous) <= rules.max_change * previous + EPS


@st.composite
def sku_rules(draw: st.DrawFn, current: float, cost: float) -> PricingRules:
    def maybe(strategy: st.SearchStrategy) -> object:
        return draw(st.one_of(st.none(), strategy))

    return PricingRules(
        floor=maybe(st.floats(0.4, 1.1).map(lambda f: round(f * current, 2))),
        ceiling=maybe(st.floats(0.9, 1.6).map(lambda f: round(f * current, 2))),
        min_margin=maybe(st.floats(0.0, 0.6)),
        allow_clearance=draw(st.booleans()),
        max_change=maybe(st.floats(0.03, 0.5)),
        markdown_only=draw(st.booleans()),
        endings=maybe(st.sampled_from([(0.9,), (0.9, 0.99), (0.0,), (0.0, 0.5), (0.99,)])),
    )


@st.composite
def rule_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[PricingRules], int]:
    n = 3
    current = np.array([draw(st.floats(2.0, 60.0)) for _ in range(n)]).round(2)
    cost = current * np.array([draw(st.floats(0.2, 1.1)) for _ in range(n)])
    rules = [draw(sku_rules(float(c), float(k))) for c, k in zip(current, cost, strict=True)]
    return current, cost, rules, draw(st.integers(0, 2**31))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=rule_cases())
def test_no_optimised_price_ever_breaks_a_rule(case: tuple[np.ndarray, np.ndarray, list[PricingRules], int]) -> None:
    current, cost, rules, seed = case
    rng = np.random.default_rng(seed)
    n, T = current.size, 4
    # Rungs end in .9, .99, .0 or .5, so each endings rule keeps some of them.
    prices = price_ladder(current, np.linspace(0.4, 1.5, 23), endings=(0.0, 0.5, 0.9, 0.99))
    demand = (
        rng.uniform(0.2, 3.0, (n, 1, 1))
        * np.exp(-rng.uniform(0.3, 3.0, (n, 1, 1)) * (prices[:, None, :] / current[:, None, None] - 1))
        * rng.uniform(0.5, 1.5, (n, T, 1))
    )
    demand = np.where(np.isfinite(prices)[:, None, :], demand, np.nan)
    stock = rng.integers(0, 12, n)
    ladder_ok = [
        [np.isfinite(p) and static_ok(p, r, k) for p in row] for row, r, k in zip(prices, rules, cost, strict=True)
    ]
    feasible_now = [
        any(ok and move_ok(p, c, r) for p, ok in zip(row, oks, strict=True))
        for row, oks, c, r in zip(prices, ladder_ok, current, rules, strict=True)
    ]
    try:
        problem = PricingProblem.from_rules(
            [f"i{k}" for k in range(n)], prices, demand, stock, cost, cost * 0.1, current, rules
        )
    except RuleConflict as conflict:
        assert conflict.rules, "a conflict names its rules"
        assert all(rule in str(conflict) for rule in conflict.rules)
        assert conflict.items and all(item in str(conflict) for item in conflict.items[:3])
        assert not all(feasible_now), "a conflict is raised only when some SKU really has no price"
        event("rule conflict")
        return
    event("solved")
    assert all(feasible_now), "no conflict raised although some SKU has no price"

    solution = solve(problem)
    rows = np.arange(n)
    for i in rows:
        assert static_ok(solution.price_now[i], rules[i], cost[i])
        assert move_ok(solution.price_now[i], current[i], rules[i])
    # Every policy entry of every reachable stock, after every possible previous price.
    for i in rows:
        k = solution.stateful_row[i]
        for t in range(T):
            for s in range(solution.reach[i, t] + 1):
                if k < 0 or t == 0:
                    assert static_ok(prices[i, solution.policy[i, t, s]], rules[i], cost[i])
                    continue
                for prev in np.flatnonzero(ladder_ok[i]):
                    chosen = prices[i, solution.policy_by_prev[k, t, s, prev]]
                    assert static_ok(chosen, rules[i], cost[i])
                    assert move_ok(chosen, prices[i, prev], rules[i])
    # Closed-loop paths, feeding back the price actually charged.
    for _ in range(5):
        level, previous, prev_index = stock.copy(), current.copy(), np.full(n, -1)
        for t in range(T):
            j = policy_index(solution, t, level, prev_index)
            for i in rows:
                assert static_ok(prices[i, j[i]], rules[i], cost[i])
                assert move_ok(prices[i, j[i]], previous[i], rules[i])
            level = level - np.minimum(rng.poisson(problem.demand[rows, t, j]), level)
            previous, prev_index = prices[rows, j], j
    # Markdown-only prices never rise on any path, so neither does their expectation.
    for i in rows:
        if rules[i].markdown_only:
            assert np.all(np.diff(solution.expected_price[i]) <= 1e-9)
            assert solution.expected_price[i, 0] <= current[i] + EPS
