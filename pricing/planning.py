"""From the pricing team's SKU list to a solved schedule: ladders, demand, rules, the DP and its fluid bound.

The CLI (`siyu price optimise`) and the HTTP endpoint (`POST /price`) both call `plan`, so a
SKU priced one way is priced the same the other. Demand comes either from the caller (a
forecast per item and ladder price, optionally per period: then the ladder is exactly the
caller's prices) or from the registered demand model on a ladder around today's price.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from pricing import MAX_HORIZON
from pricing.optimiser.fluid import fluid_bound
from pricing.optimiser.ladder import price_ladder
from pricing.optimiser.problem import Objective, PricingProblem
from pricing.optimiser.rules import PricingRules
from pricing.optimiser.solve import PricingSolution, Progress, solve
from siyu.settings import Settings

SKU_REQUIRED: tuple[str, ...] = ("item_id", "stock", "cost", "current_price", "salvage_value")
RULE_COLUMNS: tuple[str, ...] = (
    "floor",
    "ceiling",
    "min_margin",
    "allow_clearance",
    "max_change",
    "markdown_only",
    "endings",
)
SKU_OPTIONAL: tuple[str, ...] = ("category_id", *RULE_COLUMNS)
DEMAND_REQUIRED: tuple[str, ...] = ("item_id", "price", "expected_units")


class PlanningError(ValueError):
    """Input the optimiser cannot use; the message names the field, the item and the reason."""


@dataclass
class Plan:
    """A solved pricing problem with what the team reads: bound, timing, demand source, per-SKU notes."""

    problem: PricingProblem
    solution: PricingSolution
    bound: np.ndarray  # (n,) fluid LP upper bound on the expected value
    solve_seconds: float
    demand_source: str  # "caller forecast" or "demand model vN"
    notes: list[list[str]] = field(default_factory=list)

    @property
    def gap_to_bound(self) -> np.ndarray:
        """(n,) 1 - value / bound: how far the policy could at most be from a better one."""
        value = self.solution.value
        return np.where(self.bound > 0, 1.0 - value / np.maximum(self.bound, 1e-12), 0.0)


def default_rules(settings: Settings) -> PricingRules:
    """The rules every SKU gets unless its row overrides them."""
    return PricingRules(
        min_margin=settings.pricing_min_margin,
        max_change=settings.pricing_max_change,
        markdown_only=settings.pricing_markdown_only,
        endings=parse_endings(settings.pricing_endings),
    )


def parse_endings(text: str | float | None) -> tuple[float, ...] | None:
    """`"0.9,0.99"` -> (0.9, 0.99); empty/None -> no endings rule."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or str(text).strip() == "":
        return None
    try:
        return tuple(float(part) for part in str(text).split(","))
    except ValueError as exc:
        raise PlanningError(f"endings: expected numbers separated by commas like '0.9,0.99', got {text!r}") from exc


def validate_skus(skus: pd.DataFrame) -> pd.DataFrame:
    """Check the SKU table column by column; returns it with clean dtypes or raises PlanningError."""
    missing = [c for c in SKU_REQUIRED if c not in skus.columns]
    if missing:
        raise PlanningError(f"SKU table: missing column(s) {missing} (required: {', '.join(SKU_REQUIRED)})")
    unknown = [c for c in skus.columns if c not in SKU_REQUIRED + SKU_OPTIONAL]
    if unknown:
        raise PlanningError(
            f"SKU table: unknown column(s) {unknown} (allowed: {', '.join(SKU_REQUIRED + SKU_OPTIONAL)})"
        )
    if skus.empty:
        raise PlanningError("SKU table: no rows")
    frame = skus.copy()
    frame["item_id"] = frame["item_id"].astype(str)
    duplicated = frame["item_id"][frame["item_id"].duplicated()]
    if len(duplicated):
        raise PlanningError(f"item_id: duplicated {duplicated.head(3).tolist()} (one row per SKU)")
    # Checked as numpy arrays: on the request path (one SKU per /price call) pandas per-column ops dominate.
    checks = {
        "stock": (lambda v: v >= 0, "a number >= 0 whole units"),
        "cost": (lambda v: v >= 0, "a number >= 0"),
        "current_price": (lambda v: v > 0, "a number > 0"),
        "salvage_value": (lambda v: np.ones_like(v, dtype=bool), "a finite number (0 = written off)"),
    }
    for column, (ok, rule) in checks.items():
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | ~ok(values)
            if column == "stock":
                bad |= values != np.round(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise PlanningError(
                f"{column}: must be {rule}; item {frame['item_id'].iat[row]!r} has {frame[column].iat[row]!r}"
            )
        frame[column] = values
    frame["stock"] = frame["stock"].astype(np.int64)
    return frame


def rules_for(skus: pd.DataFrame, base: PricingRules | None) -> list[PricingRules]:
    """One PricingRules per SKU: `base` (None = no rules) with the row's own rule columns on top."""
    base = base or PricingRules()
    present = [c for c in RULE_COLUMNS if c in skus.columns]
    if not present:
        return [base] * len(skus)
    rules = []
    for position, row in enumerate(skus[present].to_dict("records")):
        update = {}
        for name, value in row.items():
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            update[name] = parse_endings(value) if name == "endings" else value
        try:
            rules.append(base.overridden_by(update))
        except ValueError as exc:
            raise PlanningError(f"rules of item {skus['item_id'].iat[position]!r}: {exc}") from exc
    return rules


def validate_demand(demand: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Check a caller's forecast: long format item_id, price, expected_units [, period]."""
    missing = [c for c in DEMAND_REQUIRED if c not in demand.columns]
    if missing:
        raise PlanningError(f"demand: missing column(s) {missing} (required: {', '.join(DEMAND_REQUIRED)}[, period])")
    if demand.empty:
        raise PlanningError("demand: no rows")
    frame = demand.copy()
    frame["item_id"] = frame["item_id"].astype(str)
    for column in ("price", "expected_units", *(("period",) if "period" in frame.columns else ())):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values) | (values <= 0 if column == "price" else values < 0)
        if column == "period":
            bad |= (values != np.round(values)) | (values >= horizon)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            rule = {"price": "> 0", "expected_units": ">= 0", "period": f"a whole number in 0..{horizon - 1}"}[column]
            raise PlanningError(
                f"demand: {column} must be {rule}; item {frame['item_id'].iat[row]!r} has {frame[column].iat[row]!r}"
                f" (row {row + 1})"
            )
        frame[column] = values
    keys = ["item_id", "price", *(["period"] if "period" in frame.columns else [])]
    if frame.duplicated(keys).any():
        raise PlanningError(
            f"demand: duplicated rows for {frame[frame.duplicated(keys)][keys].head(2).to_dict('records')}"
        )
    return frame


def demand_cube(demand: pd.DataFrame, item_ids: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, J) ladder of exactly the forecast's prices and (n, T, J) expected units; stationary without `period`."""
    missing = sorted(set(item_ids) - set(demand["item_id"]))
    if missing:
        raise PlanningError(f"demand: no forecast rows for item(s) {missing[:5]}")
    frame = demand[demand["item_id"].isin(set(item_ids))]
    order = pd.Index(item_ids)
    prices = frame.drop_duplicates(["item_id", "price"])[["item_id", "price"]]
    prices = prices.assign(row=order.get_indexer(prices["item_id"])).sort_values(["row", "price"])
    prices["j"] = prices.groupby("row").cumcount()
    n, width = len(item_ids), int(prices["j"].max()) + 1
    ladder = np.full((n, width), np.nan)
    ladder[prices["row"].to_numpy(), prices["j"].to_numpy()] = prices["price"].to_numpy()
    cube = np.full((n, horizon, width), np.nan)
    located = frame.merge(prices, on=["item_id", "price"])
    if "period" in frame.columns:
        cube[located["row"], located["period"].astype(int), located["j"]] = located["expected_units"]
    else:
        cube[located["row"].to_numpy(), :, located["j"].to_numpy()] = located["expected_units"].to_numpy()[:, None]
    holes = np.isnan(cube) & np.isfinite(ladder)[:, None, :]
    if holes.any():
        row, period, j = (int(x[0]) for x in np.nonzero(holes))
        raise PlanningError(
            f"demand: item {item_ids[row]!r} has no expected_units for period {period} at price {ladder[row, j]:g}"
            " (give every price in every period, or omit `period` for the same forecast every period)"
        )
    return ladder, np.nan_to_num(cube)


def plan(
    skus: pd.DataFrame,
    horizon: int,
    settings: Settings,
    *,
    objective: Objective = "revenue",
    rules: PricingRules | None = None,
    per_sku_rules: list[PricingRules | None] | None = None,
    demand: pd.DataFrame | None = None,
    model: object | None = None,
    model_version: str | None = None,
    start: date | None = None,
    arrivals: np.ndarray | None = None,
    progress: Progress | None = None,
) -> Plan:
    """Validate, build ladders and demand, solve the DP and the fluid bound. Raises PlanningError on bad input.

    Rules: `rules` for every SKU, then the SKU table's rule columns, then `per_sku_rules` (the HTTP
    request's per-SKU overrides) on top.
    """
    if not 1 <= horizon <= MAX_HORIZON:
        raise PlanningError(f"horizon: must be 1..{MAX_HORIZON} periods, got {horizon}")
    skus = validate_skus(skus)
    ids = skus["item_id"].to_numpy()
    per_sku = rules_for(skus, rules)
    if per_sku_rules is not None:
        per_sku = [r if o is None else r.overridden_by(o) for r, o in zip(per_sku, per_sku_rules, strict=True)]
    notes: list[list[str]] = [[] for _ in ids]
    if demand is not None:
        ladder, cube = demand_cube(validate_demand(demand, horizon), ids, horizon)
        source = "caller forecast"
    else:
        if model is None:
            raise PlanningError("no demand: pass a forecast (--demand) or register a demand model (siyu train demand)")
        ladder = _model_ladder(skus["current_price"].to_numpy(float), per_sku, settings)
        categories = skus["category_id"].astype(str).to_numpy() if "category_id" in skus.columns else None
        cube = model.expected_units(ids, np.nan_to_num(ladder, nan=1.0), start or date.today(), horizon, categories)
        cube = np.where(np.isfinite(ladder)[:, None, :], cube, 0.0)
        known = model.known(ids)
        for i in np.flatnonzero(~known):
            notes[i].append("item unknown to the demand model: its category's prior demand curve was used")
        source = f"demand model v{model_version}" if model_version else "demand model"
    started = time.perf_counter()
    try:
        problem = PricingProblem.from_rules(
            ids,
            ladder,
            cube,
            skus["stock"].to_numpy(),
            skus["cost"].to_numpy(float),
            skus["salvage_value"].to_numpy(float),
            skus["current_price"].to_numpy(float),
            rules=per_sku,
            objective=objective,
            arrivals=arrivals,
        )
    except ValueError as exc:
        raise PlanningError(str(exc)) from exc
    solution = solve(problem, progress=progress)
    seconds = time.perf_counter() - started
    return Plan(problem, solution, fluid_bound(problem), seconds, source, notes)


def _model_ladder(current: np.ndarray, rules: list[PricingRules], settings: Settings) -> np.ndarray:
    """Default ladder around today's price, snapped to each SKU's allowed endings (grouped by endings)."""
    multipliers = np.linspace(settings.pricing_ladder_low, settings.pricing_ladder_high, settings.pricing_ladder_steps)
    endings = [r.endings for r in rules]
    rows_by_endings: dict[tuple[float, ...] | None, list[int]] = {}
    for i, e in enumerate(endings):
        rows_by_endings.setdefault(e, []).append(i)
    parts = {e: price_ladder(current[rows], multipliers, e) for e, rows in rows_by_endings.items()}
    width = max(p.shape[1] for p in parts.values())
    ladder = np.full((current.size, width), np.nan)
    for e, rows in rows_by_endings.items():
        ladder[rows, : parts[e].shape[1]] = parts[e]
    return ladder


def schedule_frame(plan: Plan) -> pd.DataFrame:
    """One row per SKU: the price to set now, expected figures, the hold-today's-price what-if, rules, bound."""
    s = plan.solution
    return pd.DataFrame(
        {
            "item_id": s.item_ids,
            "price_now": s.price_now,
            "binding_rules": s.binding,
            "expected_value": s.value,
            "expected_revenue": s.revenue,
            "expected_margin": s.margin,
            "expected_units": s.units,
            "sell_through": s.sell_through,
            "waste": s.waste,
            "hold_price": plan.problem.prices[np.arange(s.item_ids.size), s.hold_index],
            "hold_value": s.hold_value,
            "hold_revenue": s.hold_revenue,
            "hold_margin": s.hold_margin,
            "hold_units": s.hold_units,
            "hold_sell_through": s.hold_sell_through,
            "hold_waste": s.hold_waste,
            "fluid_bound": plan.bound,
            "gap_to_bound": plan.gap_to_bound,
            "schedule_price": list(s.expected_price),
            "schedule_stock": list(s.expected_stock),
            "schedule_units": list(s.expected_units),
            "demand_source": plan.demand_source,
            "notes": ["; ".join(n) for n in plan.notes] if plan.notes else "",
        }
    )


def policy_frame(plan: Plan) -> pd.DataFrame:
    """The full policy, long: the price for every SKU, period and reachable stock level."""
    s, problem = plan.solution, plan.problem
    item, period, stock = np.nonzero(s.policy >= 0)
    index = s.policy[item, period, stock].astype(np.int64)
    return pd.DataFrame(
        {
            "item_id": s.item_ids[item],
            "period": period.astype(np.int32),
            "stock": stock.astype(np.int64),
            "price": problem.prices[item, index],
        }
    )
