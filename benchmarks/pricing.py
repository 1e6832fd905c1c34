"""Pricing: the world backtest against the oracle, the solver at assortment scale, rules, and /price latency.

Four measurements, each next to its own baseline in the same run:
- backtest: learned-demand DP vs the oracle DP, best static price, today's price and a markdown rule,
  on a generated world's true demand (common random numbers, CIs over seeds, per cell);
- scale: the DP for 10,000 SKUs x 28 periods x stock up to 200 x 15 prices, its values checked
  against the plain reference DP on a sample, and its gap to the fluid LP bound;
- rules: every price of every policy entry and simulated path checked against random rule sets;
- /price: one-SKU requests over HTTP, p50/p99, next to the in-process solve of the same request.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from pricing.backtest.report import run_world_backtest
from pricing.optimiser.audit import count_violations
from pricing.optimiser.fluid import fluid_bound
from pricing.optimiser.problem import PricingProblem
from pricing.optimiser.reference import solve_reference
from pricing.optimiser.rules import PricingRules, RuleConflict
from pricing.optimiser.solve import solve
from siyu.metrics import percentile_ms
from siyu.settings import Settings, settings_under
from siyu.world.entities import WorldConfig
from siyu.world.generator import generate_world

SCALE = {"skus": 10_000, "periods": 28, "max_stock": 200, "prices": 15}
QUICK_SCALE = {"skus": 1_000, "periods": 28, "max_stock": 200, "prices": 15}


def world_for(quick: bool) -> WorldConfig:
    if quick:
        return WorldConfig(users=4_000, items=300, days=45, seed=5)
    return WorldConfig(users=20_000, items=800, days=75, seed=5)


def synthetic_problem(skus: int, periods: int, max_stock: int, prices: int, seed: int = 0) -> PricingProblem:
    """A random assortment: constant-elasticity demand 0.2..15 units/period at today's price, weekly swing."""
    rng = np.random.default_rng(seed)
    current = np.round(rng.lognormal(np.log(40), 0.6, skus), 1) + 0.9
    ladder = current[:, None] * np.linspace(0.5, 1.2, prices)[None, :]
    base = rng.uniform(0.2, 15.0, skus)
    elasticity = rng.uniform(0.8, 3.5, skus)
    weekly = 1 + 0.25 * np.sin(2 * np.pi * np.arange(periods) / 7)
    demand = (
        base[:, None, None]
        * weekly[None, :, None]
        * (ladder / current[:, None])[:, None, :] ** -elasticity[:, None, None]
    )
    cost = current * rng.uniform(0.35, 0.65, skus)
    return PricingProblem(
        item_ids=np.array([f"s{i:05d}" for i in range(skus)]),
        prices=ladder,
        demand=demand,
        stock=rng.integers(1, max_stock + 1, skus),
        cost=cost,
        salvage=cost * rng.uniform(0.0, 0.6, skus),
        current_price=current,
    )


def scale_run(quick: bool) -> tuple[dict, list[str]]:
    shape = QUICK_SCALE if quick else SCALE
    problem = synthetic_problem(**shape)
    solve(synthetic_problem(50, 3, 5, 3))  # compile the kernels outside the timing
    started = time.perf_counter()
    solution = solve(problem)
    solve_seconds = time.perf_counter() - started
    started = time.perf_counter()
    bound = fluid_bound(problem)
    bound_seconds = time.perf_counter() - started
    sample = np.random.default_rng(1).choice(shape["skus"], 12, replace=False)
    reference = solve_reference(_rows(problem, sample))
    rel = np.abs(solution.value[sample] - reference.value) / np.maximum(np.abs(reference.value), 1e-12)
    figures = {
        "solve_seconds": solve_seconds,
        "fluid_bound_seconds": bound_seconds,
        **shape,
        "max_rel_diff_vs_reference_dp": float(rel.max()),
        "dp_vs_fluid_bound": float(solution.value.sum() / bound.sum()),
        "bound_below_dp_skus": int((bound < solution.value * (1 - 1e-9)).sum()),
    }
    notes = [
        f"scale: {shape['skus']:,} SKUs x {shape['periods']} periods x stock 1..{shape['max_stock']} x"
        f" {shape['prices']} prices, Poisson demand 0.2..15 units/period at today's price; solve = backward DP +"
        " exact forward pass of the optimal policy + the hold-today's-price pass",
        "max_rel_diff_vs_reference_dp: 12 sampled SKUs re-solved by the plain reference DP (full sums, no truncation)",
    ]
    return figures, notes


def _rows(problem: PricingProblem, rows: np.ndarray) -> PricingProblem:
    return PricingProblem(
        item_ids=problem.item_ids[rows],
        prices=problem.prices[rows],
        demand=problem.demand[rows],
        stock=problem.stock[rows],
        cost=problem.cost[rows],
        salvage=problem.salvage[rows],
        current_price=problem.current_price[rows],
    )


def random_rules(problem: PricingProblem, rng: np.random.Generator) -> list[PricingRules]:
    """One random rule set per SKU: every rule on for some SKUs, in every combination."""
    rules = []
    for price in problem.current_price:
        rules.append(
            PricingRules(
                floor=float(price * rng.uniform(0.5, 0.8)) if rng.random() < 0.5 else None,
                ceiling=float(price * rng.uniform(1.0, 1.2)) if rng.random() < 0.5 else None,
                min_margin=float(rng.uniform(0, 0.3)) if rng.random() < 0.5 else None,
                allow_clearance=bool(rng.random() < 0.2),
                max_change=float(rng.uniform(0.1, 0.4)) if rng.random() < 0.4 else None,
                markdown_only=bool(rng.random() < 0.3),
                endings=(0.9, 0.99) if rng.random() < 0.3 else None,
            )
        )
    return rules


def rule_violations(quick: bool, seed: int = 3) -> dict[str, int]:
    """Solve under random per-SKU rules, then audit every reachable policy price and simulated paths.

    SKUs whose random rules conflict (no ladder price survives) must be refused with the rules named;
    they are counted and dropped, and the rest is solved and audited.
    """
    rng = np.random.default_rng(seed)
    base = synthetic_problem(300 if quick else 2000, 14, 40, 15, seed=seed)
    rules = random_rules(base, rng)
    keep = np.ones(base.item_ids.size, dtype=bool)
    refused = 0
    while True:
        rows = np.flatnonzero(keep)
        sub = _rows(base, rows)
        try:
            problem = PricingProblem.from_rules(
                sub.item_ids,
                sub.prices,
                sub.demand,
                sub.stock,
                sub.cost,
                sub.salvage,
                sub.current_price,
                rules=[rules[i] for i in rows],
            )
            break
        except RuleConflict as conflict:
            if not conflict.rules:
                raise
            dropped = np.isin(base.item_ids, list(conflict.items)) & keep
            refused += int(dropped.sum())
            keep &= ~dropped
    solution = solve(problem)
    checked, violations = count_violations(problem, solution, [rules[i] for i in rows], rng)
    return {"rule_violations": violations, "rule_checks": checked, "rule_conflicts_refused": refused}


def latency_run(settings: Settings, quick: bool, log_dir: Path) -> tuple[dict, list[str]]:
    """POST /price with one SKU, sequentially, over HTTP, next to the same plan solved in process."""
    from pricing.demand.registry import load_champion
    from pricing.planning import default_rules, plan
    from serving.local.launcher import running_server

    requests = 100 if quick else 500
    model, version = load_champion(settings)
    items = model.skus.index.to_numpy()[:50]
    body = {
        "skus": [{"item_id": str(items[0]), "stock": 30, "cost": 10.0, "current_price": 25.0, "salvage_value": 5.0}],
        "horizon": 28,
    }
    latencies, floor, errors = [], [], 0
    with (
        running_server(settings, log_dir / "pricing-server.log") as base,
        httpx.Client(base_url=base, timeout=30, headers={"X-API-Key": settings.api_key}) as client,
    ):
        for _ in range(10):  # warm-up on both sides: first calls pay imports and kernel loading
            client.post("/price", json=body)
            plan(pd.DataFrame(body["skus"]), 28, settings, rules=default_rules(settings), model=model)
        for k in range(requests):
            body["skus"][0]["item_id"] = str(items[k % len(items)])
            started = time.perf_counter()
            response = client.post("/price", json=body)
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200
            started = time.perf_counter()
            plan(
                pd.DataFrame(body["skus"]),
                28,
                settings,
                rules=default_rules(settings),
                model=model,
                model_version=version,
            )
            floor.append(time.perf_counter() - started)
    figures = {
        "price_p50_ms": percentile_ms(latencies, 50),
        "price_p99_ms": percentile_ms(latencies, 99),
        "price_floor_p50_ms": percentile_ms(floor, 50),
        "price_floor_p99_ms": percentile_ms(floor, 99),
        "price_requests": requests,
        "price_errors": errors,
    }
    notes = [
        f"/price: {requests} sequential one-SKU requests (28 periods, stock 30, default rules) over HTTP to one"
        " BentoML process; floor = the same plan solved in process, interleaved"
    ]
    return figures, notes


def run(quick: bool, root: Path, reports: Path) -> tuple[dict, list[str]]:
    world = world_for(quick)
    settings = settings_under(root / "pricing", feast_project="siyupricing")
    gen = generate_world(world, settings, progress=False)
    horizon = 14 if quick else 28
    summary = run_world_backtest(settings, None, horizon, 8 if quick else 20, out=reports, write_json=False)
    scale, scale_notes = scale_run(quick)
    rules = rule_violations(quick)
    f = summary.figures
    figures: dict[str, object] = {
        "revenue_vs_oracle_learned_demand": f["revenue_vs_oracle_learned_demand"],
        "uplift_vs_best_static": f["uplift_vs_best_static"],
        "uplift_vs_current_price": f["uplift_vs_current_price"],
        "oracle_uplift_vs_best_static": f["oracle_uplift_vs_best_static"],
        "forecast_vs_truth_units_at_current_price": f["forecast_vs_truth_units_at_current_price"],
        "backtest_skus": f["skus"],
        "backtest_periods": horizon,
        "backtest_seeds": f["seeds"],
        "dp_vs_fluid_bound": scale["dp_vs_fluid_bound"],
        **rules,
        **{k: v for k, v in scale.items() if k != "dp_vs_fluid_bound"},
        "elasticity_vs_truth": f["elasticity_vs_truth"],
        "cells": f["cells"],
        "real_data_elasticities": _real_elasticities(),
        "policies": {p: _policy_row(row) for p, row in f["policies"].items()},  # type: ignore[union-attr]
    }
    notes = [
        f"backtest world: {world.users:,} users x {world.items:,} items x {world.days} days = {gen.events:,} events;"
        f" {f['skus']} SKUs with stock from day {world.days - horizon}, {horizon}-day horizon,"
        f" {f['seeds']} seeds of common random numbers",
        "value = sales revenue + salvage value of what is left (regular items carried at cost, expired fresh food"
        " at 0, seasonal leftovers at the outlet price); ratios are sums over SKUs, averaged over seeds",
        "best_static = the ladder price with the best expected value under the TRUE demand (knows the curve, not"
        " the draws); clairvoyant_static also knows the draws (reported in the policies table only)",
        "cells: fast/slow = observed units/day before the start above/below the median; high/low cover = supply"
        " above/below what the horizon sells at that rate",
        *scale_notes,
        f"rule_violations: prices checked against random per-SKU rule sets ({rules['rule_checks']:,} prices:"
        " every reachable policy entry and 20 simulated paths per SKU, re-derived from the rules themselves);"
        f" {rules['rule_conflicts_refused']} SKUs whose random rules conflict were refused with the rules named",
        "plots: pricing_paths.png (price and stock paths of a few SKUs, seed 0), pricing_ratios.png",
    ]
    try:
        from pricing.demand.registry import train_and_register
        from training.pipeline import bootstrap

        bootstrap(settings)
        demand = train_and_register(settings)
        figures["demand_model_holdout"] = {k: float(v) for k, v in demand.metrics.items()}
        notes.append(
            "demand_model_holdout: the registered model's own time split (fit on the first 80% of days, scored on the"
            " rest), next to a per-SKU mean baseline: deviance/mae/bias on days that did not sell out, `sales_*`"
            " compares stock-capped predictions with units sold on every day; then the fitted parameters"
        )
        latency, latency_notes = latency_run(settings, quick, root)
        figures.update(latency)
        notes += latency_notes
    except Exception as exc:  # report what failed rather than lose the other figures
        notes.append(f"/price latency not measured: {type(exc).__name__}: {exc}")
    return figures, notes


def _real_elasticities() -> dict[str, dict[str, float]]:
    """Own-price elasticities with 95% intervals on the shared real price sets, one row per data set x segment."""
    from pricing.demand.real_data import real_elasticities

    table = real_elasticities()
    return {
        f"{row.dataset}: {row.segment}": {
            "elasticity": row.elasticity,
            "ci_low": row.ci_low,
            "ci_high": row.ci_high,
            "n_obs": int(row.n_obs),
        }
        for row in table.itertuples()
    }


def _policy_row(row: dict) -> dict[str, float]:
    """A policy's ratios to the oracle (means) and per-SKU figures, flat for the markdown table."""
    out: dict[str, float] = {}
    for key, value in row.items():
        out[key] = value["mean"] if isinstance(value, dict) else value
    return out
