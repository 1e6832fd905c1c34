"""The demand model's data side: the panel made uniform, the parameter layout and the design rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from pricing.demand.config import TREND_KNOT_DAYS, TREND_UNIT_DAYS, WEEKDAYS, DemandConfig
from siyu.settings import Settings


def _as_panel(settings_or_frame: Settings | pd.DataFrame) -> pd.DataFrame:
    if isinstance(settings_or_frame, pd.DataFrame):
        return settings_or_frame
    from pricing.demand.sales import daily_sales

    return daily_sales(settings_or_frame)


def _prepared(panel: pd.DataFrame, cfg: DemandConfig) -> pd.DataFrame:
    """Fill optional columns with neutral values so simulated frames and the real panel look alike."""
    missing = [c for c in ("item_id", "date", "units", "price") if c not in panel.columns]
    if missing:
        raise ValueError(f"demand panel lacks column(s) {missing} (have {list(panel.columns)})")
    out = panel.copy()
    out["date"] = pd.to_datetime(out["date"]).dt.normalize()
    out["item_id"] = out["item_id"].astype(str)
    defaults: dict[str, object] = {"category_id": "unknown", "on_promotion": False, "censored": False}
    for column, value in defaults.items():
        if column not in out.columns:
            out[column] = value
    out["category_id"] = out["category_id"].fillna("unknown").astype(str)
    if "list_price" not in out.columns:
        out["list_price"] = out.groupby("item_id")["price"].transform("max")
    if "reference_price" not in out.columns:
        out["reference_price"] = out["list_price"]
    for name in cfg.features:
        if name not in out.columns:
            out[name] = np.nan
    bad = ~(out["price"] > 0)
    if bad.any():
        first = out.loc[bad].iloc[0]
        raise ValueError(
            f"demand panel has {int(bad.sum())} row(s) with a missing or non-positive price"
            f" (first: item {first['item_id']} on {first['date'].date()})"
        )
    return out


@dataclass
class _Standardiser:
    """log1p then z-score of the count-like features; a missing value becomes the mean (0)."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, frame: pd.DataFrame, names: tuple[str, ...]) -> _Standardiser:
        values = np.log1p(frame[list(names)].astype(float))  # pandas skips NaN without warnings
        mean = values.mean().fillna(0.0).to_numpy(dtype=float)
        scale = values.std(ddof=0).fillna(1.0).to_numpy(dtype=float)
        return cls(names, mean, np.where(scale > 1e-9, scale, 1.0))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.names:
            return np.zeros((len(frame), 0))
        values = (np.log1p(frame[list(self.names)].to_numpy(dtype=float)) - self.mean) / self.scale
        return np.nan_to_num(values)


class _Layout:
    """Where each parameter sits in the flat vector the optimiser sees.

    [a_sku (S) | b_sku (S) | a_category (C) | a_global | b_category (C) | b_global | weekday (6) |
    trend | features (k) | promotion]. SKU parameters come first so the Hessian's SKU part is
    2x2 blocks, which is what makes the exact posterior variances cheap.
    """

    def __init__(self, n_sku: int, n_cat: int, n_features: int, n_trend: int) -> None:
        self.n_sku, self.n_cat, self.n_features = n_sku, n_cat, n_features
        sizes = {
            "a": n_sku,
            "b": n_sku,
            "a_cat": n_cat,
            "a_global": 1,
            "b_cat": n_cat,
            "b_global": 1,
            "weekday": WEEKDAYS - 1,
            "trend": n_trend,
            "features": n_features,
            "promo": 1,
        }
        self.slices: dict[str, slice] = {}
        start = 0
        for name, size in sizes.items():
            self.slices[name] = slice(start, start + size)
            start += size
        self.size = start

    def __getitem__(self, name: str) -> slice:
        return self.slices[name]

    @property
    def data(self) -> slice:
        """Shared parameters with a column in the data (weekday .. promotion), contiguous at the end."""
        return slice(self.slices["weekday"].start, self.size)

    def index(self, name: str) -> np.ndarray:
        return np.arange(self.size)[self.slices[name]]


@dataclass
class _Design:
    """The rows the likelihood uses, kept in the model's own structure instead of one sparse matrix.

    eta = a[sku] + b[sku] * x + Z @ shared, where Z holds the weekday, trend, feature and
    promotion columns. Gradients and Hessian blocks are then bincounts and one small Z'WZ.
    """

    y: np.ndarray
    censored: np.ndarray
    sku: np.ndarray  # row -> SKU position
    x: np.ndarray  # log(price / reference)
    Z: np.ndarray  # (rows, K_data)
    cat_of_sku: np.ndarray
    layout: _Layout
    members: sparse.csr_matrix  # (SKUs, rows) indicator: sums rows per SKU

    def eta(self, theta: np.ndarray) -> np.ndarray:
        lay = self.layout
        return theta[lay["a"]][self.sku] + theta[lay["b"]][self.sku] * self.x + self.Z @ theta[lay.data]

    def transpose_times(self, v: np.ndarray) -> np.ndarray:
        """X'v for the implicit design matrix X."""
        lay = self.layout
        out = np.zeros(lay.size)
        out[lay["a"]] = np.bincount(self.sku, weights=v, minlength=lay.n_sku)
        out[lay["b"]] = np.bincount(self.sku, weights=v * self.x, minlength=lay.n_sku)
        out[lay.data] = self.Z.T @ v
        return out


def _price_ratio(frame: pd.DataFrame, cfg: DemandConfig) -> np.ndarray:
    reference = frame["list_price"] if cfg.reference == "list" else frame["reference_price"]
    reference = reference.where(reference > 0, frame["price"])
    return np.log(frame["price"].to_numpy(dtype=float) / reference.to_numpy(dtype=float))


def trend_knots(n_days: int) -> np.ndarray:
    """Knots every two weeks, keeping at least two weeks after the last so its slope is estimable."""
    return np.arange(TREND_KNOT_DAYS, n_days - TREND_KNOT_DAYS + 1, TREND_KNOT_DAYS, dtype=float)


def trend_basis(days: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Piecewise-linear trend in days since the origin: [t, (t - k1)+, (t - k2)+, ...] per 30 days."""
    days = np.asarray(days, dtype=float)
    return np.column_stack([days, *(np.maximum(days - k, 0.0) for k in knots)]) / TREND_UNIT_DAYS


def _shared_columns(
    frame: pd.DataFrame, origin: pd.Timestamp, standardiser: _Standardiser, knots: np.ndarray
) -> np.ndarray:
    """Weekday dummies (Monday is the base), piecewise trend, features, promotion flag."""
    dates = pd.to_datetime(frame["date"])
    weekday = dates.dt.weekday.to_numpy()
    dummies = (weekday[:, None] == np.arange(1, WEEKDAYS)[None, :]).astype(float)
    days = ((dates - origin) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    promo = frame["on_promotion"].fillna(False).to_numpy(dtype=float)
    return np.column_stack([dummies, trend_basis(days, knots), standardiser.transform(frame), promo])


def _build_design(
    frame: pd.DataFrame,
    cfg: DemandConfig,
    layout: _Layout,
    sku_index: pd.Index,
    cat_of_sku: np.ndarray,
    origin: pd.Timestamp,
    standardiser: _Standardiser,
    knots: np.ndarray,
) -> _Design:
    censored = frame["censored"].fillna(False).to_numpy(dtype=bool)
    y = frame["units"].to_numpy(dtype=float)
    # A day sold out at open says P(D >= 0) = 1: no information, whichever way censoring is handled.
    keep = ~censored if cfg.censoring == "exclude" else ~(censored & (y <= 0))
    if cfg.censoring == "ignore":
        censored = np.zeros_like(censored)
    frame, y, censored = frame.loc[keep], y[keep], censored[keep]
    n = len(frame)
    sku = sku_index.get_indexer(frame["item_id"])
    members = sparse.csr_matrix((np.ones(n), (sku, np.arange(n))), shape=(layout.n_sku, n))
    return _Design(
        y=y,
        censored=censored,
        sku=sku,
        x=_price_ratio(frame, cfg),
        Z=_shared_columns(frame, origin, standardiser, knots),
        cat_of_sku=cat_of_sku,
        layout=layout,
        members=members,
    )
