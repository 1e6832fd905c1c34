"""The pricing team's endpoint, kept free of BentoML: request and response models, and the Pricer behind them.

The demand model is loaded once, at start-up, from the registry (@champion); a request only
builds the problem and solves it. A SKU the model has not seen gets its category's prior
demand curve, and its response says so.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pricing import MAX_HORIZON
from pricing.optimiser.rules import PricingRules, RuleConflict
from pricing.optimiser.solve import ExpectedPath
from pricing.planning import Plan, PlanningError, default_rules, plan
from siyu.settings import Settings

MAX_SKUS = 1000
MAX_YUAN = 10_000_000.0  # per unit: beyond any retail price, and far from float overflow in the solver


class SkuIn(BaseModel):
    """One SKU to price: its stock, money, optional deliveries and rule overrides."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, max_length=128)
    stock: int = Field(ge=0, le=1_000_000, description="units on hand now")
    cost: float = Field(ge=0, le=MAX_YUAN, description="unit cost (yuan)")
    current_price: float = Field(ge=0.01, le=MAX_YUAN, description="today's price (yuan, at least a cent)")
    salvage_value: float = Field(
        0.0, ge=-MAX_YUAN, le=MAX_YUAN, description="value per unit left at the end (0 = written off; < 0 = disposal)"
    )
    category_id: str | None = Field(None, max_length=128, description="lets an unseen SKU use its category's prior")
    arrivals: list[int] | None = Field(None, description="units arriving at the start of each period (period 0 first)")
    rules: PricingRules | None = Field(None, description="overrides of the request's rules for this SKU")

    @field_validator("cost", "current_price", "salvage_value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("arrivals")
    @classmethod
    def _units(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(a < 0 for a in value):
            raise ValueError("arrivals must be whole units >= 0")
        return value


class PriceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skus: list[SkuIn] = Field(min_length=1, max_length=MAX_SKUS)
    horizon: int = Field(28, ge=1, le=MAX_HORIZON, description="periods (days) to plan")
    objective: Literal["revenue", "margin"] = "revenue"
    rules: PricingRules | None = Field(
        None, description="rules for every SKU, on top of the service's defaults (SIYU_PRICING_*), field by field"
    )
    start: date | None = Field(
        None, ge=date(2000, 1, 1), le=date(2100, 12, 31), description="first day of the plan (default: today)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> PriceRequest:
        ids = [s.item_id for s in self.skus]
        if len(set(ids)) != len(ids):
            raise ValueError("skus: each item_id may appear once")
        for sku in self.skus:
            if sku.arrivals is not None and len(sku.arrivals) > self.horizon:
                raise ValueError(f"skus[{sku.item_id}].arrivals: {len(sku.arrivals)} periods > horizon {self.horizon}")
        return self


class Figures(BaseModel):
    expected_value: float = Field(description="objective plus salvage value of what is left")
    expected_revenue: float
    expected_margin: float
    expected_units: float
    sell_through: float
    waste: float = Field(description="expected units written off or left over")


class Period(BaseModel):
    period: int
    expected_price: float
    expected_stock: float
    expected_units: float


class SkuPrice(BaseModel):
    item_id: str
    price_now: float = Field(description="the price to set now")
    binding_rules: list[str] = Field(description="rules that moved the price away from the unconstrained best")
    optimal: Figures
    hold_current_price: Figures = Field(description="the same figures if today's price is held")
    fluid_bound: float = Field(description="LP upper bound on expected_value")
    gap_to_bound: float
    schedule: list[Period]
    notes: list[str] = Field(default_factory=list)


class PriceResponse(BaseModel):
    demand_model_version: str | None
    demand_source: str
    horizon: int
    solve_seconds: float
    items: list[SkuPrice]


class PricingInputError(ValueError):
    """The request is well-formed but cannot be priced (conflicting rules, nothing allowed)."""


class Pricer:
    """Holds the champion demand model for the life of the service."""

    def __init__(self, settings: Settings) -> None:
        from pricing.demand.registry import load_champion

        self.settings = settings
        try:
            self.model, self.version = load_champion(settings)
            self.unavailable: str | None = None
        except Exception as exc:  # no model registered yet: /price explains, /recommend keeps working
            self.model, self.version = None, None
            self.unavailable = f"no demand model available ({exc}): run `siyu train demand`"

    def price(self, request: PriceRequest) -> PriceResponse:
        if self.model is None:
            raise PricingInputError(self.unavailable or "no demand model")
        skus = pd.DataFrame(
            {
                "item_id": [s.item_id for s in request.skus],
                "stock": [s.stock for s in request.skus],
                "cost": [s.cost for s in request.skus],
                "current_price": [s.current_price for s in request.skus],
                "salvage_value": [s.salvage_value for s in request.skus],
                "category_id": [s.category_id for s in request.skus],
            }
        )
        # The request's rules override the service's defaults field by field.
        base = default_rules(self.settings)
        if request.rules is not None:
            base = base.overridden_by(request.rules)
        arrivals = np.zeros((len(request.skus), request.horizon), dtype=np.int64)
        for i, sku in enumerate(request.skus):
            if sku.arrivals:
                arrivals[i, : len(sku.arrivals)] = sku.arrivals
        try:
            result = plan(
                skus,
                request.horizon,
                self.settings,
                objective=request.objective,
                rules=base,
                per_sku_rules=[s.rules for s in request.skus],
                model=self.model,
                model_version=self.version,
                start=request.start,
                arrivals=arrivals,
            )
        except (PlanningError, RuleConflict) as exc:
            raise PricingInputError(str(exc)) from exc
        return _response(result, request.horizon, self.version)


def _figures(path: ExpectedPath, i: int) -> Figures:
    return Figures(
        expected_value=float(path.value[i]),
        expected_revenue=float(path.revenue[i]),
        expected_margin=float(path.margin[i]),
        expected_units=float(path.sold[i]),
        sell_through=float(path.sell_through[i]),
        waste=float(path.waste[i]),
    )


def _response(result: Plan, horizon: int, version: str | None) -> PriceResponse:
    s = result.solution
    items = []
    for i, item_id in enumerate(s.item_ids):
        items.append(
            SkuPrice(
                item_id=str(item_id),
                price_now=float(s.price_now[i]),
                binding_rules=[r for r in str(s.binding[i]).split(",") if r],
                optimal=_figures(s.path, i),
                hold_current_price=_figures(s.hold, i),
                fluid_bound=float(result.bound[i]),
                gap_to_bound=float(result.gap_to_bound[i]),
                schedule=[
                    Period(
                        period=t,
                        expected_price=float(s.expected_price[i, t]),
                        expected_stock=float(s.expected_stock[i, t]),
                        expected_units=float(s.expected_units[i, t]),
                    )
                    for t in range(horizon)
                ],
                notes=result.notes[i] if result.notes else [],
            )
        )
    return PriceResponse(
        demand_model_version=version,
        demand_source=result.demand_source,
        horizon=horizon,
        solve_seconds=result.solve_seconds,
        items=items,
    )
