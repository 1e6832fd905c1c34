"""The pricing problem the DP solves: ladder, Poisson demand, stock, money and rules per SKU, validated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pricing.optimiser.rules import (
    PricingRules,
    RuleConflict,
    RuleMasks,
    rule_arrays,
    rule_masks,
    stateful_permits,
)

Objective = Literal["revenue", "margin"]


def _items_named(item_ids: np.ndarray, bad: np.ndarray) -> str:
    """A few item ids where a per-SKU check failed, for error messages."""
    rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
    more = f" and {rows.size - 5} more" if rows.size > 5 else ""
    return f"items {[str(x) for x in item_ids[rows[:5]]]}{more}"


@dataclass
class PricingProblem:
    """One pricing problem per SKU, stacked: ladder, Poisson demand per (period, price), stock, money, rules.

    Shapes: n SKUs, T periods, J ladder prices. ``prices`` is ascending with NaN padding on the right;
    ``demand[n, t, j]`` is the expected units in period t at price j (NaN where the price is padding);
    ``arrivals[n, t]`` are units added at the START of period t, before selling; ``expire[n, t]`` writes all
    stock on hand off at the salvage value at the END of period t. ``allowed`` is what the static rules leave
    (every period); ``max_change`` (NaN = off) and ``markdown_only`` are the stateful rules, measured from the
    previous period's price and, in period 0, from ``current_price``. ``rule_masks`` (optional, from
    :meth:`from_rules`) only lets :func:`solve` name the rule that bound a price.
    """

    item_ids: np.ndarray
    prices: np.ndarray
    demand: np.ndarray
    stock: np.ndarray
    cost: np.ndarray
    salvage: np.ndarray
    current_price: np.ndarray
    arrivals: np.ndarray | None = None
    expire: np.ndarray | None = None
    objective: Objective = "revenue"
    allowed: np.ndarray | None = None
    max_change: np.ndarray | None = None
    markdown_only: np.ndarray | None = None
    rule_masks: RuleMasks | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.item_ids = np.asarray(self.item_ids).astype(str).ravel()
        n = self.item_ids.size
        self.prices = np.asarray(self.prices, dtype=float)
        if self.prices.ndim != 2 or self.prices.shape[0] != n or self.prices.shape[1] == 0:
            raise ValueError(f"prices: expected shape (n={n}, J>=1), got {self.prices.shape}")
        J = self.prices.shape[1]
        if J > 127:
            raise ValueError(f"prices: at most 127 ladder prices per SKU (policies are int8), got J={J}")
        valid = np.isfinite(self.prices)
        if not valid[:, 0].all() or np.any(~valid[:, :-1] & valid[:, 1:]):
            raise ValueError(
                "prices: each row needs its first price, and NaN padding only on the right; "
                + _items_named(self.item_ids, ~valid[:, :1] | (~valid[:, :-1] & valid[:, 1:]))
            )
        with np.errstate(invalid="ignore"):
            bad = valid & (self.prices <= 0)
            bad[:, 1:] |= valid[:, 1:] & ~(self.prices[:, 1:] > self.prices[:, :-1])
        if bad.any():
            raise ValueError(f"prices: must be positive and strictly ascending; {_items_named(self.item_ids, bad)}")

        self.demand = np.asarray(self.demand, dtype=float)
        if self.demand.ndim != 3 or self.demand.shape[0] != n or self.demand.shape[2] != J or self.demand.shape[1] < 1:
            raise ValueError(f"demand: expected shape (n={n}, T>=1, J={J}), got {self.demand.shape}")
        T = self.demand.shape[1]
        bad = valid[:, None, :] & ~(np.isfinite(self.demand) & (np.nan_to_num(self.demand, nan=-1.0) >= 0))
        if bad.any():
            raise ValueError(f"demand: NaN, infinite or negative expected units; {_items_named(self.item_ids, bad)}")
        self.demand = np.where(valid[:, None, :], self.demand, 0.0)

        self.stock = self._units("stock", self.stock, (n,))
        self.arrivals = (
            np.zeros((n, T), np.int64) if self.arrivals is None else self._units("arrivals", self.arrivals, (n, T))
        )
        self.cost = self._money("cost", self.cost, n, nonnegative=True)
        self.salvage = self._money("salvage", self.salvage, n, nonnegative=False)
        self.current_price = self._money("current_price", self.current_price, n, nonnegative=True)
        if np.any(self.current_price <= 0):
            raise ValueError(f"current_price: must be positive; {_items_named(self.item_ids, self.current_price <= 0)}")
        self.expire = np.zeros((n, T), bool) if self.expire is None else self._flags("expire", self.expire, (n, T))
        if self.objective not in ("revenue", "margin"):
            raise ValueError(f"objective: must be 'revenue' or 'margin', got {self.objective!r}")

        self.allowed = valid.copy() if self.allowed is None else self._flags("allowed", self.allowed, (n, J)) & valid
        if not self.allowed.any(axis=1).all():
            raise ValueError(f"allowed: no allowed ladder price; {_items_named(self.item_ids, ~self.allowed.any(1))}")
        self.markdown_only = (
            np.zeros(n, bool) if self.markdown_only is None else self._flags("markdown_only", self.markdown_only, (n,))
        )
        self.max_change = (
            np.full(n, np.nan) if self.max_change is None else np.asarray(self.max_change, dtype=float).reshape(-1)
        )
        if self.max_change.shape != (n,):
            raise ValueError(f"max_change: expected shape ({n},), got {self.max_change.shape}")
        bad = ~np.isnan(self.max_change) & ~((self.max_change > 0) & (self.max_change <= 1))
        if bad.any():
            raise ValueError(f"max_change: must be NaN (off) or in (0, 1]; {_items_named(self.item_ids, bad)}")
        empty_now = ~self.allowed_now.any(axis=1)
        if empty_now.any():
            i = int(np.flatnonzero(empty_now)[0])
            on = {"markdown_only": bool(self.markdown_only[i]), "max_change": bool(np.isfinite(self.max_change[i]))}
            rules = tuple(r for r, active in on.items() if active)
            change = f", max_change {self.max_change[i]:g}" if on["max_change"] else ""
            raise RuleConflict(
                f"no allowed ladder price survives {', '.join(rules)} from today's price for "
                f"{_items_named(self.item_ids, empty_now)}: item {self.item_ids[i]} today {self.current_price[i]:g}"
                f"{change}, allowed prices {self.prices[i][self.allowed[i]].tolist()}",
                rules=rules,
                items=tuple(self.item_ids[empty_now]),
            )

    def _units(self, name: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        arr = np.asarray(value)
        if arr.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
        num = arr.astype(float)
        bad = ~np.isfinite(num) | (num < 0) | (num != np.round(num))
        if bad.any():
            raise ValueError(f"{name}: must be whole units >= 0; {_items_named(self.item_ids, bad)}")
        return num.astype(np.int64)

    def _money(self, name: str, value: np.ndarray, n: int, nonnegative: bool) -> np.ndarray:
        arr = np.asarray(value, dtype=float)
        if arr.shape != (n,):
            raise ValueError(f"{name}: expected shape ({n},), got {arr.shape}")
        bad = ~np.isfinite(arr) | ((arr < 0) if nonnegative else False)
        if np.any(bad):
            what = "finite and >= 0" if nonnegative else "finite"
            raise ValueError(f"{name}: must be {what}; {_items_named(self.item_ids, np.asarray(bad))}")
        return arr

    def _flags(self, name: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        arr = np.asarray(value)
        if arr.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
        return arr.astype(bool)

    @classmethod
    def from_rules(
        cls,
        item_ids: np.ndarray,
        prices: np.ndarray,
        demand: np.ndarray,
        stock: np.ndarray,
        cost: np.ndarray,
        salvage: np.ndarray,
        current_price: np.ndarray,
        rules: PricingRules | Sequence[PricingRules] | None = None,
        **kwargs: object,
    ) -> PricingProblem:
        """A problem whose allowed prices and stateful rules come from PricingRules (one for all, or one per SKU).

        Raises RuleConflict when the rules leave some SKU without a price
        (see :func:`pricing.optimiser.rules.rule_masks`).
        """
        ids = np.asarray(item_ids).astype(str).ravel()
        masks = rule_masks(ids, prices, cost, current_price, **rule_arrays(rules, ids.size))
        return cls(
            ids,
            prices,
            demand,
            stock,
            cost,
            salvage,
            current_price,
            allowed=masks.static,
            max_change=masks.max_change,
            markdown_only=masks.markdown_only,
            rule_masks=masks,
            **kwargs,  # type: ignore[arg-type]
        )

    # ---- derived quantities ----------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """(n SKUs, T periods, J ladder prices)."""
        n, T, J = self.demand.shape
        return n, T, J

    @property
    def valid(self) -> np.ndarray:
        """(n, J) ladder entries that are prices rather than padding."""
        return np.isfinite(self.prices)

    @property
    def reward(self) -> np.ndarray:
        """(n, J) reward per unit sold: the price, or the price less unit cost for the margin objective."""
        r = self.prices - self.cost[:, None] if self.objective == "margin" else self.prices.copy()
        return np.where(self.valid, r, 0.0)

    @property
    def stateful(self) -> np.ndarray:
        """(n,) SKUs whose state needs the previous price (a max_change or markdown_only rule is on)."""
        return self.markdown_only | np.isfinite(self.max_change)

    @property
    def supply(self) -> np.ndarray:
        """(n,) every unit the SKU will ever have: today's stock plus all known arrivals."""
        return self.stock + self.arrivals.sum(axis=1)

    @property
    def max_stock(self) -> int:
        """S: the stock axis runs 0..S, the largest supply over SKUs."""
        return int(self.supply.max(initial=0))

    @property
    def reach(self) -> np.ndarray:
        """(n, T) the largest stock a SKU can hold in period t (after arrivals); expiry resets it to 0."""
        n, T, _ = self.shape
        reach = np.empty((n, T), np.int64)
        carried = self.stock.copy()
        for t in range(T):
            reach[:, t] = carried + self.arrivals[:, t]
            carried = np.where(self.expire[:, t], 0, reach[:, t])
        return reach

    def stateful_permits_now(self) -> dict[str, np.ndarray]:
        """Period-0 permits of the stateful rules, measured from today's price."""
        return stateful_permits(self.current_price[:, None], self.prices, self.max_change, self.markdown_only)

    @property
    def allowed_now(self) -> np.ndarray:
        """(n, J) prices allowed in period 0."""
        now = self.stateful_permits_now()
        return self.allowed & now["markdown_only"] & now["max_change"]

    def transitions(self) -> np.ndarray:
        """(n, J, J) [prev, j]: price j allowed in the period after price prev (static and stateful rules)."""
        moves = stateful_permits(self.prices[:, :, None], self.prices[:, None, :], self.max_change, self.markdown_only)
        return moves["markdown_only"] & moves["max_change"] & self.allowed[:, None, :]

    def hold_index(self) -> np.ndarray:
        """(n,) the ladder price nearest today's price: the price held fixed by the what-if baseline."""
        distance = np.where(self.valid, np.abs(self.prices - self.current_price[:, None]), np.inf)
        return distance.argmin(axis=1)
