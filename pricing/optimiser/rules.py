"""Merchandising rules turned into what the optimiser can use: which ladder prices are allowed, and which rule bound.

Two kinds of rule exist. Static rules (floor, ceiling, minimum margin over cost, allowed price endings) remove
ladder prices once and for all. Stateful rules (``max_change``, ``markdown_only``) constrain a price relative to
the previous period's price, so they enlarge the optimiser's state; in period 0 they are relative to today's price.
Everything here is vectorised over SKUs: one ``PricingRules`` per SKU (or one for all) becomes per-SKU arrays, and
the arrays become boolean (n, J) masks, one per rule, kept apart so that a chosen price can be explained by naming
the rules that excluded the price the optimiser would otherwise have picked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pricing.optimiser.ladder import ending_cents, has_ending

# The order in which binding rules are named; also the order of RuleMasks.permits.
RULE_ORDER: tuple[str, ...] = ("floor", "ceiling", "min_margin", "markdown_only", "max_change", "endings")
STATIC_RULES: tuple[str, ...] = ("floor", "ceiling", "min_margin", "endings")
STATEFUL_RULES: tuple[str, ...] = ("markdown_only", "max_change")

# Prices are in cents; a rule bound equal to a price up to float noise permits it.
_EPS = 1e-9
# How many offending items a RuleConflict spells out before summarising the rest.
_ITEMS_SHOWN = 3


class RuleConflict(ValueError):
    """Rules that no ladder price can satisfy together; the message names the rules, the item and the numbers."""

    def __init__(self, message: str, rules: tuple[str, ...] = (), items: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.rules = rules
        self.items = items


class PricingRules(BaseModel):
    """The pricing rules of one SKU (or of every SKU, when one object is given for all)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    floor: float | None = Field(None, description="(yuan) lowest price allowed")
    ceiling: float | None = Field(None, description="(yuan) highest price allowed")
    min_margin: float | None = Field(
        None, description="(fraction over cost) price >= cost * (1 + min_margin), unless allow_clearance"
    )
    allow_clearance: bool = Field(False, description="clearance: min_margin is not enforced (selling below cost is ok)")
    max_change: float | None = Field(
        None, description="(fraction, 0 < x <= 1) |price - previous price| <= x * previous price, period to period"
    )
    markdown_only: bool = Field(False, description="price never above the previous period's price")
    endings: tuple[float, ...] | None = Field(
        None, description="allowed fractional yuan parts, e.g. (0.9, 0.99), or (0.0,) for whole yuan"
    )
    same_price_across_channels: bool = Field(
        True, description="one price for all channels (the optimiser always sets one price per SKU)"
    )

    @field_validator("floor", "ceiling")
    @classmethod
    def _positive_price(cls, value: float | None, info: Any) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{info.field_name} must be a positive finite price in yuan, got {value}")
        return value

    @field_validator("min_margin")
    @classmethod
    def _margin(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"min_margin must be a finite fraction >= 0 over cost (0.05 = 5%), got {value}")
        return value

    @field_validator("max_change")
    @classmethod
    def _change(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and 0 < value <= 1):
            raise ValueError(f"max_change must be a fraction with 0 < max_change <= 1 (0.1 = 10%), got {value}")
        return value

    @field_validator("endings")
    @classmethod
    def _endings(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None:
            ending_cents(value)  # raises a ValueError that says what is wrong
        return value

    def overridden_by(self, overrides: PricingRules | dict[str, Any]) -> PricingRules:
        """These rules with some fields replaced: only the fields `overrides` sets ({"floor": 9.9} keeps min_margin).

        A PricingRules counts only its explicitly set fields, so a per-SKU override never resets a default.
        """
        update = overrides.model_dump(exclude_unset=True) if isinstance(overrides, PricingRules) else overrides
        return PricingRules(**{**self.model_dump(), **update})


def rule_arrays(rules: PricingRules | Sequence[PricingRules] | None, n: int) -> dict[str, Any]:
    """Per-SKU arrays (NaN / False = rule off) from one PricingRules for all SKUs or one per SKU.

    The result is the keyword arguments of :func:`rule_masks`.
    """
    if rules is None:
        rules = PricingRules()
    per_item = [rules] * n if isinstance(rules, PricingRules) else list(rules)
    if len(per_item) != n:
        raise ValueError(f"rules: got {len(per_item)} PricingRules for {n} items (give one, or one per item)")

    def numbers(name: str) -> np.ndarray:
        return np.array([np.nan if getattr(r, name) is None else getattr(r, name) for r in per_item], dtype=float)

    return {
        "floor": numbers("floor"),
        "ceiling": numbers("ceiling"),
        "min_margin": numbers("min_margin"),
        "allow_clearance": np.array([r.allow_clearance for r in per_item], dtype=bool),
        "max_change": numbers("max_change"),
        "markdown_only": np.array([r.markdown_only for r in per_item], dtype=bool),
        "endings": [r.endings for r in per_item],
    }


def stateful_permits(
    previous: np.ndarray, prices: np.ndarray, max_change: np.ndarray, markdown_only: np.ndarray
) -> dict[str, np.ndarray]:
    """Where `markdown_only` and `max_change` permit moving from `previous` to `prices` (broadcast, SKU first).

    ``previous`` is today's price as (n, 1) for period 0, or the ladder as (n, J, 1) against (n, 1, J) for the
    period-to-period transition matrix. Rules that are off (NaN max_change, False markdown_only) permit everything.
    """
    prev = np.asarray(previous, dtype=float)
    new = np.asarray(prices, dtype=float)
    ndim = max(prev.ndim, new.ndim)
    per_sku = (-1,) + (1,) * (ndim - 1)
    change = np.asarray(max_change, dtype=float).reshape(per_sku)
    markdown = np.asarray(markdown_only, dtype=bool).reshape(per_sku)
    with np.errstate(invalid="ignore"):
        within = np.abs(new - prev) <= change * prev + _EPS
        not_up = new <= prev + _EPS
    return {
        "markdown_only": ~markdown | not_up,
        "max_change": np.isnan(change) | within,
    }


def binding_names(permits: Mapping[str, np.ndarray], best: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Per SKU, the comma-joined names of the rules that exclude the unconstrained best price ('' if it was chosen).

    ``best`` is the argmax of the period-0 action values over the whole ladder, ``chosen`` the argmax over the
    allowed prices; when they differ, the rules that do not permit ``best`` are what bound the price.
    """
    best = np.asarray(best, dtype=np.int64)
    chosen = np.asarray(chosen, dtype=np.int64)
    rows = np.arange(best.size)
    names = np.full(best.size, "", dtype=object)
    differs = best != chosen
    for name, mask in permits.items():
        hit = differs & ~mask[rows, best]
        names[hit] = [f"{prev},{name}" if prev else name for prev in names[hit]]
    return names.astype(str)


@dataclass(frozen=True)
class RuleMasks:
    """Per-rule (n, J) masks, True where the rule permits ladder price j; stateful ones relative to today's price."""

    item_ids: np.ndarray
    valid: np.ndarray
    permits: dict[str, np.ndarray]
    max_change: np.ndarray
    markdown_only: np.ndarray

    @property
    def static(self) -> np.ndarray:
        """Prices allowed in every period by the static rules (the optimiser's ``allowed``)."""
        return self.valid & np.logical_and.reduce([self.permits[r] for r in STATIC_RULES])

    @property
    def allowed_now(self) -> np.ndarray:
        """Prices allowed in period 0: the static rules and the stateful ones relative to today's price."""
        return self.static & self.permits["markdown_only"] & self.permits["max_change"]

    def binding(self, best: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """Names of the rules that bound the period-0 price (see :func:`binding_names`)."""
        return binding_names(self.permits, best, chosen)


def _as_per_item(value: Any, n: int, name: str, dtype: type) -> np.ndarray:
    """A rule given as None (off), a scalar (all SKUs) or an (n,) array, as an (n,) array; rejects bad values."""
    off = False if dtype is bool else np.nan
    arr = np.full(n, off, dtype=dtype) if value is None else np.broadcast_to(np.asarray(value, dtype=dtype), (n,))
    if dtype is float:
        bad = np.isinf(arr) | (arr < 0)
        if name == "max_change":
            bad |= (arr == 0) | (arr > 1)
        elif name in ("floor", "ceiling"):
            bad |= arr == 0
        if bad.any():
            raise ValueError(f"{name} has invalid values {arr[bad][:3].tolist()} (NaN = rule off)")
    return arr.copy()


def _describe(name: str, i: int, arrays: Mapping[str, Any], cost: np.ndarray, current: np.ndarray) -> str:
    """The numbers behind one rule for one SKU, for conflict messages."""
    if name == "min_margin":
        need = cost[i] * (1 + arrays["min_margin"][i])
        return f"min_margin {arrays['min_margin'][i]:g} over cost {cost[i]:g} (price >= {need:g})"
    if name == "markdown_only":
        return f"markdown_only (price <= current {current[i]:g})"
    if name == "max_change":
        m = arrays["max_change"][i]
        return f"max_change {m:g} ({current[i] * (1 - m):g}..{current[i] * (1 + m):g} from current {current[i]:g})"
    if name == "endings":
        return f"endings {tuple(arrays['endings'][i])}"
    return f"{name} {arrays[name][i]:g}"


def _raise_for(
    bad: np.ndarray, rules: tuple[str, ...], item_ids: np.ndarray, explain: Callable[[int], tuple[str, tuple[str, ...]]]
) -> None:
    """Raise one RuleConflict for the SKUs in `bad` (if any): ``explain(i)`` gives a line and the rules it names."""
    items = np.flatnonzero(bad)
    if items.size == 0:
        return
    lines, named = [], set(rules)
    for i in items[:_ITEMS_SHOWN]:
        line, culprits = explain(int(i))
        lines.append(line)
        named.update(culprits)
    more = f" (and {items.size - _ITEMS_SHOWN} more items)" if items.size > _ITEMS_SHOWN else ""
    raise RuleConflict(
        "; ".join(lines) + more,
        rules=tuple(r for r in RULE_ORDER if r in named),
        items=tuple(str(x) for x in item_ids[items]),
    )


def rule_masks(
    item_ids: np.ndarray,
    prices: np.ndarray,
    cost: np.ndarray,
    current_price: np.ndarray,
    *,
    floor: np.ndarray | float | None = None,
    ceiling: np.ndarray | float | None = None,
    min_margin: np.ndarray | float | None = None,
    allow_clearance: np.ndarray | bool | None = None,
    max_change: np.ndarray | float | None = None,
    markdown_only: np.ndarray | bool | None = None,
    endings: tuple[float, ...] | Sequence[tuple[float, ...] | None] | None = None,
) -> RuleMasks:
    """Per-rule permit masks over the (n, J) NaN-padded ladder, checked for conflicts.

    Every rule argument is None (off for every SKU), a scalar (the same for every SKU) or an (n,) array with NaN /
    False meaning off for that SKU; ``endings`` is one tuple for all SKUs or one tuple-or-None per SKU.

    Raises RuleConflict, naming the rules and the item, when floor > ceiling, when the minimum margin needs a price
    above the ceiling, when no ladder price survives the static rules, or when the stateful rules measured from
    today's price leave no allowed price for period 0 (today's price may itself break a rule, e.g. after a floor
    was raised, and max_change must then still reach an allowed price).
    """
    ids = np.asarray(item_ids).astype(str)
    p = np.asarray(prices, dtype=float)
    n = p.shape[0]
    c = np.broadcast_to(np.asarray(cost, dtype=float), (n,))
    current = np.broadcast_to(np.asarray(current_price, dtype=float), (n,))
    arrays: dict[str, Any] = {
        "floor": _as_per_item(floor, n, "floor", float),
        "ceiling": _as_per_item(ceiling, n, "ceiling", float),
        "min_margin": _as_per_item(min_margin, n, "min_margin", float),
        "allow_clearance": _as_per_item(allow_clearance, n, "allow_clearance", bool),
        "max_change": _as_per_item(max_change, n, "max_change", float),
        "markdown_only": _as_per_item(markdown_only, n, "markdown_only", bool),
    }
    if endings is None or (isinstance(endings, tuple) and all(isinstance(e, int | float) for e in endings)):
        arrays["endings"] = [endings] * n
    else:
        arrays["endings"] = list(endings)
        if len(arrays["endings"]) != n:
            raise ValueError(f"endings: got {len(arrays['endings'])} entries for {n} items")

    def details(name: str, i: int) -> str:
        return _describe(name, i, arrays, c, current)

    flo, cei = arrays["floor"], arrays["ceiling"]
    _raise_for(
        flo > cei, ("floor", "ceiling"), ids, lambda i: (f"floor {flo[i]:g} > ceiling {cei[i]:g} for item {ids[i]}", ())
    )
    margin = np.where(arrays["allow_clearance"], np.nan, arrays["min_margin"])
    need = c * (1 + margin)
    _raise_for(
        need > cei + _EPS, ("ceiling", "min_margin"), ids,
        lambda i: (f"{details('min_margin', i)} > ceiling {cei[i]:g} for item {ids[i]}", ()),
    )  # fmt: skip

    valid = np.isfinite(p)
    with np.errstate(invalid="ignore"):
        permits = {
            "floor": np.isnan(flo)[:, None] | (p >= flo[:, None] - _EPS),
            "ceiling": np.isnan(cei)[:, None] | (p <= cei[:, None] + _EPS),
            "min_margin": np.isnan(need)[:, None] | (p >= need[:, None] - _EPS),
        }
    permits.update(stateful_permits(current[:, None], p, arrays["max_change"], arrays["markdown_only"]))
    ends = np.ones_like(valid)
    rows_by_endings: dict[tuple[float, ...], list[int]] = {}
    for i, e in enumerate(arrays["endings"]):
        if e is not None:
            rows_by_endings.setdefault(tuple(e), []).append(i)
    for e, rows in rows_by_endings.items():
        ends[rows] = has_ending(p[rows], e)
    permits["endings"] = ends
    permits = {name: permits[name] & valid for name in RULE_ORDER}

    masks = RuleMasks(ids, valid, permits, arrays["max_change"], arrays["markdown_only"])

    def survivors(considered: tuple[str, ...]) -> Callable[[int], tuple[str, tuple[str, ...]]]:
        """Explain an SKU left without a price by the rules that exclude some of its ladder prices."""

        def explain(i: int) -> tuple[str, tuple[str, ...]]:
            culprits = tuple(r for r in considered if np.any(valid[i] & ~permits[r][i]))
            ladder = p[i][valid[i]]
            parts = [f"ladder {ladder.min():g}..{ladder.max():g}", *(details(r, i) for r in culprits)]
            return f"no ladder price survives {', '.join(culprits)} for item {ids[i]}: {', '.join(parts)}", culprits

        return explain

    _raise_for(~masks.static.any(axis=1), (), ids, survivors(STATIC_RULES))
    _raise_for(~masks.allowed_now.any(axis=1), (), ids, survivors(RULE_ORDER))
    return masks
