"""A world backtest end to end, as the CLI and the benchmark run it: data, learned demand, policies, figures, plots.

The demand model is fitted only on the days before the backtest starts, from what the brand
sees; the truth is read for the oracle and the market alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from pricing.backtest.evaluation import breakdown, headline, policy_table
from pricing.backtest.play import BacktestResult, run_backtest
from pricing.backtest.scenario import Scenario, load_scenario, world_calendar
from pricing.demand.fit import fit_demand
from pricing.demand.model import DemandModel
from pricing.demand.sales import daily_sales
from siyu.settings import Settings


@dataclass
class BacktestSummary:
    figures: dict[str, object]
    result: BacktestResult
    plots: list[Path] = field(default_factory=list)

    def table(self) -> Table:
        """Policies as ratios to the oracle (value with its 95% interval over seeds), and per-SKU counts."""
        f = self.figures
        table = Table(
            title=f"backtest: {f['skus']} SKUs x {f['periods']} days x {f['seeds']} seeds, ratios to the oracle"
        )
        for column in ("policy", "value [95% CI]", "revenue", "margin", "units", "waste", "stock-outs", "changes"):
            table.add_column(column, justify="left" if column == "policy" else "right")
        for policy, row in f["policies"].items():  # type: ignore[union-attr]
            value = row["value_vs_oracle"]
            table.add_row(
                policy,
                f"{value['mean']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}]",
                *(f"{row[f'{name}_vs_oracle']['mean']:.3f}" for name in ("revenue", "margin", "units")),
                *(f"{row[name]:.2f}" for name in ("waste", "stockouts", "price_changes")),
            )
        table.caption = "waste, stock-outs and price changes are per SKU over the horizon"
        return table


def true_elasticity(scenario: Scenario) -> np.ndarray:
    """(n,) the world's own-price elasticity at today's price: d log E[units] / d log p on the truth's ladder.

    A central difference over the neighbouring ladder prices, on demand summed over the horizon.
    """
    demand = np.log(np.maximum(scenario.truth.sum(axis=1), 1e-12))
    log_p = np.log(scenario.ladder)
    rows = np.arange(scenario.item_ids.size)
    lo = np.maximum(scenario.current_index - 1, 0)
    hi = np.minimum(scenario.current_index + 1, scenario.ladder.shape[1] - 1)
    return (demand[rows, hi] - demand[rows, lo]) / (log_p[rows, hi] - log_p[rows, lo])


def elasticity_vs_truth(model: DemandModel, scenario: Scenario) -> dict[str, float]:
    """How far the learned elasticities are from the world's, per SKU and per category (demand-weighted)."""
    truth = true_elasticity(scenario)
    learned, se = model.elasticity(scenario.item_ids, scenario.category_ids)
    weight = scenario.truth[np.arange(truth.size), :, scenario.current_index].sum(axis=1)
    frame = pd.DataFrame({"category": scenario.category_ids, "truth": truth, "learned": learned, "w": weight})
    by_category = frame.groupby("category").apply(
        lambda g: pd.Series({c: np.average(g[c], weights=g["w"] + 1e-12) for c in ("truth", "learned")}),
        include_groups=False,
    )
    inside = np.abs(learned - truth) <= 1.645 * se
    return {
        "true_mean": float(np.average(truth, weights=weight + 1e-12)),
        "learned_mean": float(np.average(learned, weights=weight + 1e-12)),
        "sku_mae": float(np.abs(learned - truth).mean()),
        "sku_bias": float((learned - truth).mean()),
        "sku_corr": float(np.corrcoef(learned, truth)[0, 1]) if truth.size > 2 else float("nan"),
        "sku_in_90pct_interval": float(inside.mean()),
        "category_mae": float((by_category["learned"] - by_category["truth"]).abs().mean()),
        "categories": len(by_category),
    }


def run_world_backtest(
    settings: Settings,
    skus: int | None,
    horizon: int,
    seeds: int,
    start_day: int | None = None,
    out: Path | None = None,
    seed: int = 0,
    write_json: bool = True,
) -> BacktestSummary:
    """Fit demand on the days before `start_day`, play every policy `seeds` times, summarise (and plot into `out`)."""
    _, days = world_calendar(settings)
    start_day = days - horizon if start_day is None else start_day
    if start_day < 14 or start_day + horizon > days:
        raise ValueError(
            f"the world has {days} days: a {horizon}-day backtest needs start_day in 14..{days - horizon}"
            " (at least two weeks of history to learn demand from)"
        )
    started = time.perf_counter()
    sales = daily_sales(settings)
    scenario = load_scenario(settings, start_day, horizon, skus, seed=seed, sales=sales)
    model = fit_demand(sales[sales["date"] < scenario.start])
    forecast = model.expected_units(
        scenario.item_ids, scenario.ladder, scenario.start, horizon, category_ids=scenario.category_ids
    )
    result = run_backtest(scenario, forecast, seeds, seed)
    elasticity = elasticity_vs_truth(model, scenario)
    rows = np.arange(scenario.item_ids.size)
    at_current = scenario.current_index
    figures: dict[str, object] = {
        **headline(result),
        "forecast_vs_truth_units_at_current_price": float(
            forecast[rows, :, at_current].sum() / max(scenario.truth[rows, :, at_current].sum(), 1e-12)
        ),
        "elasticity_vs_truth": elasticity,
        "cells": breakdown(result),
        "policies": policy_table(result),
        "periods": horizon,
        "seeds": seeds,
        "start": str(scenario.start),
        "solve_seconds": result.solve_seconds,
        "seconds": time.perf_counter() - started,
    }
    summary = BacktestSummary(figures, result)
    if out is not None:
        from pricing.backtest.plots import plot_backtest

        out.mkdir(parents=True, exist_ok=True)
        summary.plots = plot_backtest(result, out)
        if write_json:
            (out / "backtest.json").write_text(json.dumps(figures, indent=2, default=float))
    return summary
