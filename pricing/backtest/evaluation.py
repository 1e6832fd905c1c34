"""Backtest figures: every policy as a ratio to the oracle, with confidence intervals over seeds, and by cell.

Cells are the seed's two axes the pricing team steers by: fast vs slow movers (observed sales
rate before the start, split at the median) x high vs low stock cover (supply over the horizon's
sales at that rate, split at 1: more or less stock than the horizon would sell), plus one cell
per stock kind (regular, perishable, seasonal).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from pricing.backtest.play import POLICIES, BacktestResult
from pricing.backtest.scenario import KINDS, Scenario

MEASURES: tuple[str, ...] = ("value", "revenue", "margin", "units", "waste", "stockouts", "price_changes")


def ratio_with_ci(numerator: np.ndarray, denominator: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Mean over seeds of sum(numerator)/sum(denominator) across SKUs, with a t interval over seeds."""
    per_seed = numerator.sum(axis=1) / np.maximum(denominator.sum(axis=1), 1e-12)
    mean = float(per_seed.mean())
    if per_seed.size < 2:
        return {"mean": mean, "ci_low": float("nan"), "ci_high": float("nan")}
    half = stats.t.ppf(0.5 + level / 2, per_seed.size - 1) * per_seed.std(ddof=1) / np.sqrt(per_seed.size)
    return {"mean": mean, "ci_low": mean - float(half), "ci_high": mean + float(half)}


def cells(scenario: Scenario) -> dict[str, np.ndarray]:
    """Row masks of the breakdown: speed x cover, and stock kind."""
    fast = scenario.history_units_per_day > np.median(scenario.history_units_per_day)
    high = scenario.cover > 1.0
    masks = {
        f"{'fast' if f else 'slow'}_{'high' if h else 'low'}_cover": (fast == f) & (high == h)
        for f in (True, False)
        for h in (True, False)
    }
    masks.update({kind: scenario.kind == kind for kind in KINDS})
    return masks


def headline(result: BacktestResult, rows: np.ndarray | None = None) -> dict[str, float]:
    """The headline ratios on all SKUs or on `rows`, with the oracle's own uplift as the ceiling for context."""
    pick = (lambda a: a) if rows is None else (lambda a: a[:, rows])
    learned, oracle = pick(result.outcomes["learned"].value), pick(result.outcomes["oracle"].value)
    static = pick(result.outcomes["best_static"].value)
    return {
        "revenue_vs_oracle_learned_demand": ratio_with_ci(learned, oracle)["mean"],
        "uplift_vs_best_static": ratio_with_ci(learned, static)["mean"] - 1,
        "uplift_vs_current_price": ratio_with_ci(learned, pick(result.outcomes["current"].value))["mean"] - 1,
        "oracle_uplift_vs_best_static": ratio_with_ci(oracle, static)["mean"] - 1,
        "skus": int(learned.shape[1]),
    }


def policy_table(result: BacktestResult, rows: np.ndarray | None = None) -> dict[str, dict[str, object]]:
    """Per policy: each measure's mean per SKU and its ratio to the oracle with a CI over seeds."""
    oracle = result.outcomes["oracle"]
    table: dict[str, dict[str, object]] = {}
    for policy in POLICIES:
        outcome = result.outcomes[policy]
        entry: dict[str, object] = {}
        for name in MEASURES:
            values, reference = getattr(outcome, name), getattr(oracle, name)
            if rows is not None:
                values, reference = values[:, rows], reference[:, rows]
            entry[name] = float(values.mean()) if values.size else float("nan")
            if name in ("value", "revenue", "margin", "units") and values.size:
                entry[f"{name}_vs_oracle"] = ratio_with_ci(values, reference)
        supply = result.scenario.supply if rows is None else result.scenario.supply[rows]
        units = outcome.units if rows is None else outcome.units[:, rows]
        entry["sell_through"] = float(units.sum(axis=1).mean() / max(supply.sum(), 1))
        table[policy] = entry
    return table


def breakdown(result: BacktestResult) -> dict[str, dict[str, float]]:
    """The headline numbers per cell (fast/slow x high/low cover, and per stock kind)."""
    return {name: headline(result, np.flatnonzero(mask)) for name, mask in cells(result.scenario).items() if mask.any()}
