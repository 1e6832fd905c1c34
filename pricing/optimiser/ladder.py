"""Price ladders: the finite set of prices the optimiser may pick per SKU, in cents, with the endings shoppers expect.

The dynamic programme chooses among a handful of discrete prices rather than a continuous price: demand is only
estimated at a few price points anyway, the optimiser stays exact, and merchandisers want prices that end in .9 or
.99 (or whole yuan). A ladder is an (n, J) array, ascending along J; SKUs with fewer distinct prices are padded
with NaN on the right, and every consumer masks NaN out.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# 0.50, 0.55, ..., 1.20 of today's price: deep enough for a clearance markdown, includes 1.0 (hold the price).
DEFAULT_MULTIPLIERS: np.ndarray = np.round(np.linspace(0.5, 1.2, 15), 4)


def ending_cents(endings: Iterable[float]) -> np.ndarray:
    """Validated endings as whole cents (0.9 -> 90, 0.99 -> 99, 0.0 -> 0), sorted and unique.

    Endings are the fractional part of a price in yuan, so each must lie in [0, 1) and be a whole number of cents
    (a price ending in 0.995 cannot be charged).
    """
    values = np.asarray(tuple(endings), dtype=float)
    if values.size == 0:
        raise ValueError("endings must name at least one allowed price ending, e.g. (0.9, 0.99) or (0.0,)")
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values >= 1):
        raise ValueError(f"endings must be fractional parts of a yuan in [0, 1), got {tuple(values.tolist())}")
    cents = np.round(values * 100)
    if np.any(np.abs(cents - values * 100) > 1e-6):
        raise ValueError(f"endings must be whole cents (e.g. 0.9 or 0.99), got {tuple(values.tolist())}")
    return np.unique(cents.astype(np.int64))


def has_ending(prices: np.ndarray, endings: Iterable[float]) -> np.ndarray:
    """True where a price (in yuan, cent precision) ends in one of `endings`; False for NaN."""
    p = np.asarray(prices, dtype=float)
    cents = np.round(np.nan_to_num(p, nan=0.5) * 100).astype(np.int64) % 100
    return np.isin(cents, ending_cents(endings)) & np.isfinite(p)


def apply_endings(prices: np.ndarray, endings: Iterable[float]) -> np.ndarray:
    """Snap every price to the nearest positive price whose fractional part is one of `endings` (NaN stays NaN).

    Candidates are k + e for the whole yuan k just below, at and above the price and every allowed ending e, so the
    nearest one is always among them; a tie goes to the lower price (a shopper never pays more because of the
    rounding). Prices are rounded to cents.
    """
    p = np.asarray(prices, dtype=float)
    e = ending_cents(endings) / 100.0
    base = np.floor(np.nan_to_num(p, nan=1.0))
    # (..., 3, k) candidates in ascending order, flattened so argmin's first hit is the lower of two ties.
    cand = (base[..., None, None] + np.array([-1.0, 0.0, 1.0])[:, None] + e[None, :]).reshape(*p.shape, -1)
    dist = np.where(cand > 0.005, np.abs(cand - p[..., None]), np.inf)
    snapped = np.take_along_axis(cand, np.argmin(dist, axis=-1)[..., None], axis=-1)[..., 0]
    return np.where(np.isfinite(p), np.round(snapped, 2), np.nan)


def compact_ladder(prices: np.ndarray) -> np.ndarray:
    """Sort each row, drop duplicate and non-positive prices, left-align and NaN-pad to the longest row."""
    p = np.sort(np.where(np.asarray(prices, dtype=float) > 0, prices, np.nan), axis=1)
    duplicate = np.zeros_like(p, dtype=bool)
    duplicate[:, 1:] = p[:, 1:] == p[:, :-1]
    p = np.sort(np.where(duplicate, np.nan, p), axis=1)  # np.sort puts NaN last
    width = max(int(np.isfinite(p).sum(axis=1).max(initial=0)), 1)
    return p[:, :width]


def price_ladder(
    current_price: np.ndarray,
    multipliers: np.ndarray | None = None,
    endings: tuple[float, ...] | None = None,
) -> np.ndarray:
    """(n, J) ascending price ladder per SKU: today's price times each multiplier, in cents, NaN-padded.

    With `endings` every rung is snapped to the nearest allowed ending (e.g. (0.9, 0.99), or (0.0,) for whole
    yuan); rungs that snap onto the same price collapse into one, which is why rows can have different lengths.
    """
    current = np.atleast_1d(np.asarray(current_price, dtype=float))
    if current.ndim != 1:
        raise ValueError(f"current_price must be a 1-D array of prices, got shape {current.shape}")
    if not np.all(np.isfinite(current)) or np.any(current <= 0):
        bad = np.flatnonzero(~np.isfinite(current) | (current <= 0))[:5]
        raise ValueError(f"current_price must be positive and finite; bad entries at positions {bad.tolist()}")
    m = DEFAULT_MULTIPLIERS if multipliers is None else np.asarray(multipliers, dtype=float).ravel()
    if m.size == 0 or not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError("multipliers must be a non-empty array of positive finite numbers")
    ladder = np.round(current[:, None] * np.unique(m)[None, :], 2)
    if endings is not None:
        ladder = apply_endings(ladder, endings)
    return compact_ladder(ladder)
