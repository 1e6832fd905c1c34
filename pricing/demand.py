"""The demand model: expected units per SKU per day at any price, for the price optimiser and the API.

    log E[units] = a_sku + weekday + trend + features + b_sku * log(price / reference_sku) + promo

fitted by maximum (penalised) Poisson likelihood, because units are small counts (most SKU-days
sell nothing), and the optimiser needs a mean at prices the SKU has never had.

Decisions. `compare_candidates` fits each variant on the first 80% of days and scores the rest;
numbers below are means over five generated worlds (3,000 users x 400 items x 60 days, four
seeds, plus one of 120 days). The main score is the censored log-likelihood of every later day
(lower NLL is better), because the usual deviance on non-censored days favours models that
under-predict: the days that did not sell out are the days demand happened to be low.

- **Censoring.** A sold-out day only says demand was *at least* the units sold, so its
  likelihood is P(D >= units) (right-censored Poisson). On data simulated from the model with
  sell-outs on most promotion days, treating those days as exact erases the promotion lift and
  pulls slopes 0.2-0.6 towards zero; the censored fit recovers them (tests/unit/test_demand.py).
  In the generated worlds only ~6% of days are censored (mostly empty shelves, which carry no
  information either way), and the three treatments score within 0.003 NLL of each other.
- **Pooling.** Most SKUs sell a unit every few days and change price rarely, so a SKU's own
  slope is noise. Slopes are shrunk hierarchically: b_sku ~ N(b_category, tau^2),
  b_category ~ N(b_global, omega^2); intercepts likewise a_sku ~ N(a_category, sigma_a^2). The
  variances are estimated (Laplace marginal likelihood), so the weight of a SKU's own data
  against its category is set by the data, as in empirical Bayes: w = tau^2 / (tau^2 + se^2).
  Unpooled slopes score worse (NLL 0.7193 vs 0.7158) and are useless as elasticities.
- **Monotone.** Every slope is bounded at b <= 0, so expected units never rise with price.
  The elasticity d log E[units] / d log price is b_sku at every price.
- **Reference.** Each SKU's list price is its fixed reference: a permanent price change keeps
  moving demand. A trailing "regular price" reference forgets the change once it catches up:
  its elasticities shrink (-1.63 vs -2.07) and it scores worse (0.7168).
- **Features.** The SKU's buyers' purchase frequency is used (neutral on these worlds). Its
  inventory turnover is not: a trailing own-sales ratio next to SKU intercepts acts as a lagged
  outcome (negative coefficient, Nickell bias) and made every score worse (NLL 0.7272).
- **Trend.** Piecewise linear with a knot every two weeks, extrapolated at most 7 days past the
  data, then held: a member base grows but not log-linearly. Holding it at once under-predicts
  sales by 2.7%; extrapolating without limit over-predicts the later window by 8%.
- **Trees.** LightGBM (Poisson, monotone in price, non-censored days) has the lowest MAE on
  non-censored days but under-predicts sales by 20% and promotion days by 31% (NLL 0.7360).
- **Overdispersion.** The likelihood is divided by a Pearson dispersion (quasi-Poisson, never
  below 1), which widens standard errors and lets the priors pull harder when baskets are big.
- **Uncertainty.** Standard errors are the Laplace posterior (inverse Hessian of the penalised
  objective), computed exactly by block elimination: each SKU's (a, b) pair only meets the few
  shared parameters, so the cost is linear in the number of SKUs.

The registry side (`train_and_register`, `load_champion`) logs every fit to MLflow and
registers it as a pyfunc model; the model itself is stored as parquet + json, never a pickle.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import scipy
from mlflow.models import infer_signature
from rich.console import Console
from scipy import optimize, sparse, special

from siyu.settings import Settings
from siyu.tracking import CHAMPION, alias_version, data_version, register_first_aliases, use_registry, use_tracking

FEATURES: tuple[str, ...] = ("buyer_frequency", "turnover")
WEEKDAYS = 7
TREND_UNIT_DAYS = 30.0  # trend slopes are per 30 days, so their size reads as a monthly drift
TREND_KNOT_DAYS = 14  # the trend may bend every two weeks (growth of a member base is not log-linear)
ETA_BOUNDS = (-30.0, 12.0)  # log-mean clipped inside the optimiser so a wild step cannot overflow
# A prior sd estimated at ~0 from sparse data would claim every SKU is exactly its category. With
# sd >= 0.1, 95% intervals covered 90% of simulated SKU slopes (true sd 0.15) instead of 82% at
# 0.03, and no holdout score moved.
VARIANCE_FLOOR = 0.1**2
VARIANCE_CEILING = 9.0
INTERCEPT_CATEGORY_SD = 2.0  # weak prior of category intercepts around the global one
RIDGE = 1e-4  # keeps the Hessian positive definite if a shared covariate is constant
MODEL_FILE = "demand.json"
SKU_FILE = "skus.parquet"
CATEGORY_FILE = "categories.parquet"
ARTIFACT_KEY = "demand_model"
EXPERIMENT = "demand"
Censoring = Literal["likelihood", "exclude", "ignore"]


@dataclass(frozen=True)
class DemandConfig:
    """How the model is fitted; the defaults are the measured best (see the module docstring)."""

    censoring: Censoring = "likelihood"  # P(D >= units) on sold-out days; or drop them; or treat as exact
    pooling: bool = True  # hierarchical slopes; False estimates each SKU's slope alone (nearly flat prior)
    reference: Literal["list", "trailing"] = "list"
    features: tuple[str, ...] = ("buyer_frequency",)  # turnover measured and left out (see the module docstring)
    trend_horizon_days: int = 7  # how far past the last fitted day the trend is extrapolated, then held
    min_elasticity: float = -8.0
    max_elasticity: float = 0.0  # monotone: demand never rises with price


@dataclass
class _Fitted:
    """Raw estimates of one fit, before they are wrapped into a `DemandModel`."""

    params: np.ndarray
    variances: np.ndarray
    hyper: dict[str, float]
    seconds: float
    iterations: int


# ---------------------------------------------------------------------------------------------- data


def _as_panel(settings_or_frame: Settings | pd.DataFrame) -> pd.DataFrame:
    if isinstance(settings_or_frame, pd.DataFrame):
        return settings_or_frame
    from pricing.sales import daily_sales

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


# ---------------------------------------------------------------------------------------- likelihood


def _log_survival(c: np.ndarray, eta: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log P(D >= c) for D ~ Poisson(lam) and its derivative in eta = log(lam), for c >= 1.

    d/dlam P(D >= c) = P(D = c - 1), so d log S / d eta = lam * pmf(c - 1) / S. Where S underflows
    (lam far below c) the leading term P(D = c) stands in for S, which is what S tends to.
    """
    with np.errstate(divide="ignore"):
        log_s = np.log(special.pdtrc(c - 1, lam))
    tiny = ~np.isfinite(log_s) | (log_s < -600)
    log_s = np.where(tiny, c * eta - lam - special.gammaln(c + 1) + np.log1p(lam / (c + 1)), log_s)
    log_pmf = (c - 1) * eta - lam - special.gammaln(c)
    return log_s, np.exp(eta + log_pmf - log_s)


def _loglik(eta: np.ndarray, y: np.ndarray, censored: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row log-likelihood and its first and second derivatives in eta."""
    eta = np.clip(eta, *ETA_BOUNDS)
    lam = np.exp(eta)
    ll = y * eta - lam - special.gammaln(y + 1)
    d1 = y - lam
    d2 = -lam
    if censored.any():
        c = y[censored]
        log_s, g = _log_survival(c, eta[censored], lam[censored])
        ll[censored] = log_s
        d1[censored] = g
        d2[censored] = g * (c - lam[censored] - g)  # from d/deta [lam*pmf(c-1)] = (c - lam) * lam*pmf(c-1)
    return ll, d1, d2


def _penalty_matrix(
    layout: _Layout, cat_of_sku: np.ndarray, hyper: dict[str, float], pooling: bool
) -> sparse.csr_matrix:
    """Negative log prior as 1/2 theta' P theta: differences to the parent level, weighted by 1/variance."""
    c = layout.n_cat
    rows, cols, vals, weights = [], [], [], []

    def diff(child: np.ndarray, parent: np.ndarray | None, weight: float) -> None:
        start = len(weights)
        k = np.arange(start, start + len(child))
        rows.extend([k, k] if parent is not None else [k])
        cols.extend([child, parent] if parent is not None else [child])
        vals.extend([np.ones(len(child)), -np.ones(len(child))] if parent is not None else [np.ones(len(child))])
        weights.extend([weight] * len(child))

    a, b = layout.index("a"), layout.index("b")
    a_cat, b_cat = layout.index("a_cat"), layout.index("b_cat")
    diff(a, a_cat[cat_of_sku], 1.0 / hyper["sigma_a2"])
    if pooling:
        diff(b, b_cat[cat_of_sku], 1.0 / hyper["tau2"])
        diff(b_cat, np.repeat(layout.index("b_global"), c), 1.0 / hyper["omega2"])
    else:  # nearly flat: only keeps a SKU without any price variation finite
        diff(b, None, 1.0 / VARIANCE_CEILING)
        diff(np.concatenate([b_cat, layout.index("b_global")]), None, 1.0 / VARIANCE_CEILING)
    diff(a_cat, np.repeat(layout.index("a_global"), c), 1.0 / INTERCEPT_CATEGORY_SD**2)
    shared = np.concatenate([layout.index(n) for n in ("a_global", "weekday", "trend", "features", "promo")])
    diff(shared, None, RIDGE)
    D = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(weights), layout.size)
    )
    return (D.T @ sparse.diags(np.asarray(weights)) @ D).tocsr()


def _objective(theta: np.ndarray, design: _Design, penalty: sparse.csr_matrix, phi: float) -> tuple[float, np.ndarray]:
    ll, d1, _ = _loglik(design.eta(theta), design.y, design.censored)
    p_theta = penalty @ theta
    value = -ll.sum() / phi + 0.5 * theta @ p_theta
    return float(value), -design.transpose_times(d1) / phi + p_theta


@dataclass
class _Blocks:
    """The Hessian as H = [[A, B], [B', D]]: A is 2x2 per SKU (a, b), D the few shared parameters."""

    haa: np.ndarray
    hab: np.ndarray
    hbb: np.ndarray
    Ba: np.ndarray  # (S, K)
    Bb: np.ndarray
    D: np.ndarray  # (K, K)

    def eliminate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Block elimination: A^-1 (aa, ab, bb entries per SKU), det A, G = A^-1 B (a rows, b rows),
        and the Schur complement S = D - B'A^-1 B on the shared parameters."""
        det = self.haa * self.hbb - self.hab**2
        inv_aa, inv_bb, inv_ab = self.hbb / det, self.haa / det, -self.hab / det
        Ga = inv_aa[:, None] * self.Ba + inv_ab[:, None] * self.Bb
        Gb = inv_ab[:, None] * self.Ba + inv_bb[:, None] * self.Bb
        schur = self.D - self.Ba.T @ Ga - self.Bb.T @ Gb
        return np.stack([inv_aa, inv_ab, inv_bb]), det, Ga, Gb, schur

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """H^-1 rhs by block elimination (Schur complement on the shared parameters)."""
        s = len(self.haa)
        (inv_aa, inv_ab, inv_bb), _, Ga, Gb, schur = self.eliminate()
        ra, rb, rd = rhs[:s], rhs[s : 2 * s], rhs[2 * s :]
        v = np.linalg.solve(schur, rd - Ga.T @ ra - Gb.T @ rb)
        return np.concatenate([inv_aa * ra + inv_ab * rb - Ga @ v, inv_ab * ra + inv_bb * rb - Gb @ v, v])

    def frozen(self, mask: np.ndarray) -> _Blocks:
        """The Hessian with the masked parameters' rows and columns replaced by the identity."""
        s = len(self.haa)
        fa, fb, fd = mask[:s], mask[s : 2 * s], mask[2 * s :]
        keep_d = ~fd
        D = self.D * keep_d[:, None] * keep_d[None, :] + np.diag(fd.astype(float))
        return _Blocks(
            haa=np.where(fa, 1.0, self.haa),
            hab=np.where(fa | fb, 0.0, self.hab),
            hbb=np.where(fb, 1.0, self.hbb),
            Ba=self.Ba * ~fa[:, None] * keep_d[None, :],
            Bb=self.Bb * ~fb[:, None] * keep_d[None, :],
            D=D,
        )


@dataclass
class _PenaltyBlocks:
    """The prior precision P split like the Hessian (it has no a-b cross terms)."""

    matrix: sparse.csr_matrix
    paa: np.ndarray
    pbb: np.ndarray
    B: np.ndarray  # (2S, K)
    D: np.ndarray

    @classmethod
    def of(cls, penalty: sparse.csr_matrix, n_sku: int) -> _PenaltyBlocks:
        s = n_sku
        diag = penalty.diagonal()
        return cls(
            penalty, diag[:s], diag[s : 2 * s], penalty[: 2 * s, 2 * s :].toarray(), penalty[2 * s :, 2 * s :].toarray()
        )


def _hessian(theta: np.ndarray, design: _Design, penalty: _PenaltyBlocks, phi: float) -> _Blocks:
    """Observed information of the penalised objective, assembled block by block."""
    lay = design.layout
    _, _, d2 = _loglik(design.eta(theta), design.y, design.censored)
    w = np.maximum(-d2, 0.0) / phi  # a censored day can have slightly negative curvature; clip for a PD step
    s, k = lay.n_sku, lay.size - 2 * lay.n_sku
    data = lay.data.start - 2 * s  # first data column inside the shared block
    Ba, Bb, D = np.zeros((s, k)), np.zeros((s, k)), np.zeros((k, k))
    Ba[:, data:] = design.members @ (w[:, None] * design.Z)
    Bb[:, data:] = design.members @ ((w * design.x)[:, None] * design.Z)
    root = np.sqrt(w)[:, None] * design.Z
    D[data:, data:] = root.T @ root  # q'q is a symmetric rank-k update: ~10x faster than Z'(wZ)
    return _Blocks(
        haa=np.bincount(design.sku, weights=w, minlength=s) + penalty.paa,
        hab=np.bincount(design.sku, weights=w * design.x, minlength=s),
        hbb=np.bincount(design.sku, weights=w * design.x**2, minlength=s) + penalty.pbb,
        Ba=Ba + penalty.B[:s],
        Bb=Bb + penalty.B[s:],
        D=D + penalty.D,
    )


@dataclass
class _Posterior:
    variances: np.ndarray  # diagonal of H^-1 (all parameters)
    logdet: float  # log det H, for the Laplace approximation of the marginal likelihood


def _posterior(h: _Blocks) -> _Posterior:
    """Diagonal of the inverse Hessian, the shared parameters' covariance and log det H, by blocks.

    With S = D - B'A^-1 B (Schur complement): cov_shared = S^-1,
    var(sku) = A^-1 + (A^-1 B) S^-1 (A^-1 B)', log det H = sum log det A_s + log det S.
    Exact, and linear in the number of SKUs.
    """
    (inv_aa, _, inv_bb), det, Ga, Gb, schur = h.eliminate()
    shared_cov = np.linalg.inv(schur)
    variances = np.concatenate(
        [
            inv_aa + np.einsum("ij,ij->i", Ga @ shared_cov, Ga),
            inv_bb + np.einsum("ij,ij->i", Gb @ shared_cov, Gb),
            np.diag(shared_cov),
        ]
    )
    return _Posterior(variances, float(np.sum(np.log(det)) + np.linalg.slogdet(schur)[1]))


def _fit_arrays(design: _Design, layout: _Layout, cfg: DemandConfig, start: np.ndarray) -> _Fitted:
    """Penalised maximum likelihood, with the prior variances chosen by Laplace marginal likelihood.

    The marginal likelihood of the variances (sigma_a^2, tau^2, omega^2) integrates the SKU and
    category parameters out; Laplace's approximation makes it
    -f(theta_hat) - 1/2 log det H - S/2 log sigma_a^2 - S/2 log tau^2 - C/2 log omega^2,
    which is what lme4 maximises for GLMMs. EM on the same quantities was tried first: with most
    SKUs' own data nearly uninformative about their slope it crawled (tau^2 still moving after 40
    rounds), while a direct search over three log-variances settles in a few dozen cheap refits.
    The dispersion phi is the Pearson statistic of a first fit at default variances.
    """
    started = time.perf_counter()
    lower, upper = np.full(layout.size, -np.inf), np.full(layout.size, np.inf)
    for name in ("b", "b_cat", "b_global"):
        lower[layout[name]], upper[layout[name]] = cfg.min_elasticity, cfg.max_elasticity
    names = ("sigma_a2", "tau2", "omega2") if cfg.pooling else ("sigma_a2",)
    hyper = {"sigma_a2": 1.0, "tau2": 0.25, "omega2": 0.25, "phi": 1.0}
    if not cfg.pooling:
        hyper["tau2"] = hyper["omega2"] = VARIANCE_CEILING
    state = {"theta": np.clip(start, lower, upper), "steps": 0}
    counts = {"sigma_a2": layout.n_sku, "tau2": layout.n_sku, "omega2": layout.n_cat}

    def refit(current: dict[str, float]) -> tuple[np.ndarray, _PenaltyBlocks, float]:
        penalty = _PenaltyBlocks.of(_penalty_matrix(layout, design.cat_of_sku, current, cfg.pooling), layout.n_sku)
        theta, steps = _projected_newton(state["theta"], design, penalty, current["phi"], lower, upper)
        state["theta"], state["steps"] = theta, state["steps"] + steps
        return theta, penalty, _objective(theta, design, penalty.matrix, current["phi"])[0]

    def negative_marginal(log_variances: np.ndarray) -> float:
        current = {**hyper, **dict(zip(names, np.exp(log_variances), strict=True))}
        theta, penalty, value = refit(current)
        logdet = _posterior(_hessian(theta, design, penalty, current["phi"])).logdet
        return value + 0.5 * logdet + sum(0.5 * counts[n] * np.log(current[n]) for n in names)

    theta, _, _ = refit(hyper)
    hyper["phi"] = _pearson_dispersion(theta, design)
    # ftol: the objective is a sum over ~1e4 days; changes below ~1e-2 nats do not move any estimate.
    best = optimize.minimize(
        negative_marginal,
        np.log([hyper[n] for n in names]),
        method="L-BFGS-B",
        bounds=[(np.log(VARIANCE_FLOOR), np.log(VARIANCE_CEILING))] * len(names),
        options={"eps": 1e-3, "ftol": 1e-7, "maxiter": 50},
    )
    hyper.update(dict(zip(names, np.exp(best.x).tolist(), strict=True)))
    theta, penalty, _ = refit(hyper)
    posterior = _posterior(_hessian(theta, design, penalty, hyper["phi"]))
    return _Fitted(theta, posterior.variances, hyper, time.perf_counter() - started, state["steps"])


def _projected_newton(
    theta: np.ndarray,
    design: _Design,
    penalty: _PenaltyBlocks,
    phi: float,
    lower: np.ndarray,
    upper: np.ndarray,
    max_steps: int = 100,
    tolerance: float = 1e-9,
) -> tuple[np.ndarray, int]:
    """Minimise the penalised negative log-likelihood within the slope bounds by projected Newton.

    Newton rather than L-BFGS-B because the exact Hessian is cheap (the SKU blocks only touch a
    few shared columns) and the problem is badly scaled (a SKU with three sales next to one with
    three hundred): Newton converges in a handful of steps where L-BFGS-B needed hundreds.
    Parameters held at a bound with the gradient pushing outwards are frozen for the step
    (Bertsekas' projected Newton); a backtracking line search on the projected path guarantees
    descent.
    """
    value, grad = _objective(theta, design, penalty.matrix, phi)
    for step in range(1, max_steps + 1):
        frozen = ((theta <= lower) & (grad > 0)) | ((theta >= upper) & (grad < 0))
        direction = _hessian(theta, design, penalty, phi).frozen(frozen).solve(np.where(frozen, 0.0, -grad))
        size = 1.0
        while True:
            candidate = np.clip(theta + size * direction, lower, upper)
            new_value, new_grad = _objective(candidate, design, penalty.matrix, phi)
            if new_value <= value + 1e-4 * grad @ (candidate - theta) or size < 1e-10:
                break
            size /= 2
        improvement = value - new_value
        theta, value, grad = candidate, new_value, new_grad
        if improvement < tolerance * max(1.0, abs(value)) and np.max(np.abs(np.where(frozen, 0.0, grad))) < 1e-3:
            return theta, step
    return theta, max_steps


def _pearson_dispersion(theta: np.ndarray, design: _Design) -> float:
    """Pearson chi^2 per residual degree of freedom on exact (uncensored) rows; never below 1."""
    exact = ~design.censored
    lam = np.exp(np.clip(design.eta(theta)[exact], *ETA_BOUNDS))
    dof = max(1, int(exact.sum()) - design.layout.size)
    chi2 = float(np.sum((design.y[exact] - lam) ** 2 / lam))
    return float(np.clip(chi2 / dof, 1.0, 50.0))


def _start_values(frame: pd.DataFrame, layout: _Layout, sku_index: pd.Index, cat_of_sku: np.ndarray) -> np.ndarray:
    """Each SKU's log mean units, category means of those, slopes at -1: close enough to converge fast."""
    theta = np.zeros(layout.size)
    per_sku = frame.groupby("item_id")["units"].agg(["sum", "size"]).reindex(sku_index)
    a = np.log((per_sku["sum"].to_numpy(dtype=float) + 0.5) / per_sku["size"].to_numpy(dtype=float))
    cat_mean = np.bincount(cat_of_sku, weights=a, minlength=layout.n_cat) / np.maximum(
        np.bincount(cat_of_sku, minlength=layout.n_cat), 1
    )
    theta[layout["a"]] = a
    theta[layout["a_cat"]] = cat_mean
    theta[layout["a_global"]] = a.mean()
    theta[layout["b"]] = theta[layout["b_cat"]] = theta[layout["b_global"]] = -1.0
    return theta


def fit_demand(settings_or_frame: Settings | pd.DataFrame, config: DemandConfig | None = None) -> DemandModel:
    """Fit the demand model on a daily sales panel (`pricing.sales.daily_sales`) or on the brand's data.

    A frame needs item_id, date, units and price; category_id, on_promotion, list_price,
    reference_price, censored and the feature columns are used when present.
    """
    cfg = config or DemandConfig()
    if cfg.max_elasticity > 0:
        raise ValueError(f"max_elasticity must be <= 0 so demand never rises with price, got {cfg.max_elasticity}")
    panel = _prepared(_as_panel(settings_or_frame), cfg)
    if panel.empty or panel["units"].sum() <= 0:
        raise ValueError("no sales in the demand panel: nothing to learn a demand curve from")
    panel = panel.sort_values(["item_id", "date"], kind="stable")
    sku_index = pd.Index(np.sort(panel["item_id"].unique()))
    last = panel.groupby("item_id").tail(1).set_index("item_id").reindex(sku_index)
    cat_index = pd.Index(np.sort(last["category_id"].unique()))
    cat_of_sku = cat_index.get_indexer(last["category_id"])
    origin = panel["date"].min()
    standardiser = _Standardiser.fit(panel, cfg.features)
    knots = trend_knots((panel["date"].max() - origin).days + 1)
    layout = _Layout(len(sku_index), len(cat_index), len(cfg.features), 1 + len(knots))
    panel = panel.assign(category_id=last["category_id"].reindex(panel["item_id"]).to_numpy())  # one per SKU
    design = _build_design(panel, cfg, layout, sku_index, cat_of_sku, origin, standardiser, knots)
    fitted = _fit_arrays(design, layout, cfg, _start_values(panel, layout, sku_index, cat_of_sku))
    return DemandModel._from_fit(
        fitted, layout, cfg, sku_index, cat_index, last, origin, standardiser, knots, len(design.y)
    )


# --------------------------------------------------------------------------------------------- model


@dataclass
class DemandModel:
    """A fitted demand curve per SKU, with category and global priors for SKUs it has not seen.

    `skus` (index item_id): category_id, a, a_se, b, b_se, reference_price, and the standardised
    features of the SKU's last day (held for future days). `categories` (index category_id): a, b,
    b_se. Everything else is a handful of scalars. `version` is the registry version when the
    model came from MLflow.
    """

    skus: pd.DataFrame
    categories: pd.DataFrame
    weekday: np.ndarray  # 7 effects, Monday = 0
    trend: np.ndarray  # slopes of trend_basis(days, knots)
    knots: np.ndarray
    feature_coef: np.ndarray
    promo: float
    a_global: float
    b_global: float
    b_global_se: float
    hyper: dict[str, float]
    standardiser: _Standardiser
    origin: date
    last_date: date
    config: DemandConfig
    info: dict[str, object] = field(default_factory=dict)
    version: str | None = None

    @classmethod
    def _from_fit(
        cls,
        fitted: _Fitted,
        layout: _Layout,
        cfg: DemandConfig,
        sku_index: pd.Index,
        cat_index: pd.Index,
        last: pd.DataFrame,
        origin: pd.Timestamp,
        standardiser: _Standardiser,
        knots: np.ndarray,
        n_rows: int,
    ) -> DemandModel:
        theta, var = fitted.params, fitted.variances
        reference = last["list_price"] if cfg.reference == "list" else last["reference_price"]
        reference = reference.where(reference > 0, last["price"]).to_numpy(dtype=float)
        z = standardiser.transform(last)
        skus = pd.DataFrame(
            {
                "category_id": last["category_id"].to_numpy(),
                "a": theta[layout["a"]],
                "a_se": np.sqrt(var[layout["a"]]),
                "b": theta[layout["b"]],
                "b_se": np.sqrt(var[layout["b"]]),
                "reference_price": reference,
                **{f"z_{name}": z[:, j] for j, name in enumerate(cfg.features)},
            },
            index=pd.Index(sku_index, name="item_id"),
        )
        categories = pd.DataFrame(
            {"a": theta[layout["a_cat"]], "b": theta[layout["b_cat"]], "b_se": np.sqrt(var[layout["b_cat"]])},
            index=pd.Index(cat_index, name="category_id"),
        )
        return cls(
            skus=skus,
            categories=categories,
            weekday=np.concatenate([[0.0], theta[layout["weekday"]]]),
            trend=theta[layout["trend"]],
            knots=knots,
            feature_coef=theta[layout["features"]],
            promo=float(theta[layout["promo"]][0]),
            a_global=float(theta[layout["a_global"]][0]),
            b_global=float(theta[layout["b_global"]][0]),
            b_global_se=float(np.sqrt(var[layout["b_global"]][0])),
            hyper=fitted.hyper,
            standardiser=standardiser,
            origin=origin.date(),
            last_date=last["date"].max().date(),
            config=cfg,
            info={
                "rows": n_rows,
                "skus": len(sku_index),
                "categories": len(cat_index),
                "fit_seconds": fitted.seconds,
                "iterations": fitted.iterations,
                "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )

    # -- which prior answers for an item ---------------------------------------------------------

    def coverage(self, item_ids: np.ndarray, category_ids: np.ndarray | None = None) -> np.ndarray:
        """Per item: "sku" (its own estimates), "category" (an unseen SKU of a known category) or "global"."""
        item_ids = np.asarray(item_ids, dtype=object).astype(str)
        known = self.skus.index.get_indexer(item_ids) >= 0
        cats = self._categories_of(item_ids, category_ids)
        cat_known = self.categories.index.get_indexer(cats) >= 0
        return np.where(known, "sku", np.where(cat_known, "category", "global"))

    def known(self, item_ids: np.ndarray) -> np.ndarray:
        """True where the model has seen the SKU (the API adds a note for the others)."""
        return self.skus.index.get_indexer(np.asarray(item_ids, dtype=object).astype(str)) >= 0

    def _categories_of(self, item_ids: np.ndarray, category_ids: np.ndarray | None) -> np.ndarray:
        seen = self.skus["category_id"].reindex(item_ids).to_numpy(dtype=object)
        if category_ids is not None:
            given = np.asarray(category_ids, dtype=object)
            seen = np.where(pd.isna(seen), given, seen)
        return np.where(pd.isna(seen), "", seen).astype(str)

    def _parameters(
        self, item_ids: np.ndarray, category_ids: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Intercept, slope, slope SE and feature effect per item, falling back to category, then global."""
        item_ids = np.asarray(item_ids, dtype=object).astype(str)
        level = self.coverage(item_ids, category_ids)
        sku = self.skus.reindex(item_ids)
        cat = self.categories.reindex(self._categories_of(item_ids, category_ids))
        tau2, omega2 = self.hyper["tau2"], self.hyper["omega2"]
        # An unseen SKU's slope is a new draw around its category: its SE includes tau^2 (and omega^2).
        a = np.select([level == "sku", level == "category"], [sku["a"], cat["a"]], self.a_global)
        b = np.select([level == "sku", level == "category"], [sku["b"], cat["b"]], self.b_global)
        se = np.select(
            [level == "sku", level == "category"],
            [sku["b_se"], np.sqrt(cat["b_se"] ** 2 + tau2)],
            np.sqrt(self.b_global_se**2 + tau2 + omega2),
        )
        z_cols = [f"z_{name}" for name in self.config.features]
        z = np.nan_to_num(sku[z_cols].to_numpy(dtype=float)) if z_cols else np.zeros((len(item_ids), 0))
        return a.astype(float), b.astype(float), se.astype(float), z @ self.feature_coef

    # -- predictions -----------------------------------------------------------------------------

    def reference_price(self, item_ids: np.ndarray) -> np.ndarray:
        """The price each SKU's slope is centred on (its list price); NaN for SKUs the model has not seen."""
        return self.skus["reference_price"].reindex(np.asarray(item_ids, dtype=object).astype(str)).to_numpy(float)

    def elasticity(self, item_ids: np.ndarray, category_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Own-price elasticity d log E[units] / d log price and its standard error, per item.

        The model is constant-elasticity, so this holds at the reference price and every other.
        """
        _, b, se, _ = self._parameters(item_ids, category_ids)
        return b, se

    def elasticity_table(self, level: float = 0.9) -> pd.DataFrame:
        """Every SKU's and category's elasticity with a normal interval clipped at 0 (the monotone bound)."""
        z = special.ndtri(0.5 + level / 2)
        rows = [
            self.skus.reset_index().assign(kind="sku", segment=lambda f: f["item_id"]),
            self.categories.reset_index().assign(kind="category", segment=lambda f: f["category_id"]),
        ]
        out = pd.concat(rows, ignore_index=True)[["kind", "segment", "category_id", "b", "b_se"]]
        out = out.rename(columns={"b": "elasticity", "b_se": "std_error"})
        out["ci_low"] = out["elasticity"] - z * out["std_error"]
        out["ci_high"] = np.minimum(out["elasticity"] + z * out["std_error"], self.config.max_elasticity)
        return out

    def _trend_at(self, days: np.ndarray) -> np.ndarray:
        """Trend term for day offsets from the origin; extrapolated at most trend_horizon_days, then held."""
        last = (pd.Timestamp(self.last_date) - pd.Timestamp(self.origin)).days
        return trend_basis(np.minimum(days, last + self.config.trend_horizon_days), self.knots) @ self.trend

    def expected_units(
        self,
        item_ids: np.ndarray,
        prices: np.ndarray,
        start: date,
        periods: int,
        category_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """Expected units per day, shape (n items, periods, J prices), promotion off, from `start` on.

        `prices[i, j]` is the j-th ladder price of item i. Weekday effects apply per day; the
        trend is extrapolated `trend_horizon_days` past the last fitted day, then held; features
        stay at their last observed values. An unseen SKU gets its category's (or the global) intercept and
        slope, centred on the median of its ladder since its list price is unknown to the model.
        """
        item_ids = np.asarray(item_ids, dtype=object).astype(str)
        prices = np.asarray(prices, dtype=float)
        if prices.ndim == 1:
            prices = prices[:, None]
        if prices.shape[0] != len(item_ids):
            raise ValueError(f"prices has {prices.shape[0]} rows for {len(item_ids)} item_ids (expected (n, J))")
        if not np.all(np.isfinite(prices)) or (prices <= 0).any():
            raise ValueError("prices must be finite and positive")
        if periods < 1:
            raise ValueError(f"periods must be >= 1, got {periods}")
        a, b, _, feature_effect = self._parameters(item_ids, category_ids)
        reference = self.reference_price(item_ids)
        reference = np.where(np.isfinite(reference), reference, np.median(prices, axis=1))
        days = pd.date_range(pd.Timestamp(start), periods=periods, freq="D")
        offset = ((days - pd.Timestamp(self.origin)) / pd.Timedelta(days=1)).to_numpy(dtype=float)
        by_day = self.weekday[days.weekday.to_numpy()] + self._trend_at(offset)
        base = (a + feature_effect)[:, None] + by_day[None, :]
        price_term = b[:, None] * np.log(prices / reference[:, None])
        return np.exp(np.clip(base[:, :, None] + price_term[:, None, :], *ETA_BOUNDS))

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected units for rows as they happened (their date, price, promotion flag and features)."""
        frame = _prepared(frame, self.config)
        item_ids = frame["item_id"].to_numpy(dtype=object)
        a, b, _, sku_feature_effect = self._parameters(item_ids, frame["category_id"].to_numpy(dtype=object))
        reference = self.reference_price(item_ids)
        row_reference = frame["list_price"] if self.config.reference == "list" else frame["reference_price"]
        reference = np.where(np.isfinite(reference), reference, row_reference.to_numpy(dtype=float))
        offset = ((frame["date"] - pd.Timestamp(self.origin)) / pd.Timedelta(days=1)).to_numpy(dtype=float)
        has_features = bool(self.config.features) and frame[list(self.config.features)].notna().any(axis=None)
        feature_effect = self.standardiser.transform(frame) @ self.feature_coef if has_features else sku_feature_effect
        eta = (
            a
            + feature_effect
            + self.weekday[frame["date"].dt.weekday.to_numpy()]
            + self._trend_at(offset)
            + self.promo * frame["on_promotion"].fillna(False).to_numpy(dtype=float)
            + b * np.log(frame["price"].to_numpy(dtype=float) / reference)
        )
        return np.exp(np.clip(eta, *ETA_BOUNDS))

    # -- storage ---------------------------------------------------------------------------------

    def save(self, path: Path) -> Path:
        """Write the model as two parquet tables and one json file into directory `path`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.skus.to_parquet(path / SKU_FILE)
        self.categories.to_parquet(path / CATEGORY_FILE)
        scalars = {
            "weekday": self.weekday.tolist(),
            "trend": self.trend.tolist(),
            "knots": self.knots.tolist(),
            "feature_coef": self.feature_coef.tolist(),
            "promo": self.promo,
            "a_global": self.a_global,
            "b_global": self.b_global,
            "b_global_se": self.b_global_se,
            "hyper": self.hyper,
            "standardiser": {
                "names": list(self.standardiser.names),
                "mean": self.standardiser.mean.tolist(),
                "scale": self.standardiser.scale.tolist(),
            },
            "origin": self.origin.isoformat(),
            "last_date": self.last_date.isoformat(),
            "config": {**asdict(self.config), "features": list(self.config.features)},
            "info": self.info,
        }
        (path / MODEL_FILE).write_text(json.dumps(scalars, indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> DemandModel:
        path = Path(path)
        try:
            scalars = json.loads((path / MODEL_FILE).read_text())
            skus = pd.read_parquet(path / SKU_FILE)
            categories = pd.read_parquet(path / CATEGORY_FILE)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a saved demand model ({exc})") from exc
        config = scalars["config"]
        standardiser = scalars["standardiser"]
        return cls(
            skus=skus,
            categories=categories,
            weekday=np.asarray(scalars["weekday"], dtype=float),
            trend=np.asarray(scalars["trend"], dtype=float),
            knots=np.asarray(scalars["knots"], dtype=float),
            feature_coef=np.asarray(scalars["feature_coef"], dtype=float),
            promo=float(scalars["promo"]),
            a_global=float(scalars["a_global"]),
            b_global=float(scalars["b_global"]),
            b_global_se=float(scalars["b_global_se"]),
            hyper={k: float(v) for k, v in scalars["hyper"].items()},
            standardiser=_Standardiser(
                tuple(standardiser["names"]),
                np.asarray(standardiser["mean"], dtype=float),
                np.asarray(standardiser["scale"], dtype=float),
            ),
            origin=date.fromisoformat(scalars["origin"]),
            last_date=date.fromisoformat(scalars["last_date"]),
            config=DemandConfig(**{**config, "features": tuple(config["features"])}),
            info=scalars.get("info", {}),
        )


# ---------------------------------------------------------------------------------------- evaluation


def time_split(panel: pd.DataFrame, holdout_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame, date]:
    """Earlier days to fit, the last `holdout_fraction` of days to score: the model only ever forecasts."""
    dates = pd.to_datetime(panel["date"])
    days = np.sort(dates.unique())
    if len(days) < 5:
        raise ValueError(f"need at least 5 days of sales for a time-based holdout, have {len(days)}")
    cut = pd.Timestamp(days[min(len(days) - 1, max(1, round(len(days) * (1 - holdout_fraction))))])
    return panel[dates < cut], panel[dates >= cut], cut.date()


def holdout_metrics(actual: np.ndarray, predicted: np.ndarray, item_ids: np.ndarray) -> dict[str, float]:
    """Predicted vs actual units: mean Poisson deviance, MAE and bias per SKU-day, and per SKU over the window.

    Callers pass non-censored days only: on a sold-out day the actual is a lower bound on demand.
    """
    y, mu = np.asarray(actual, dtype=float), np.maximum(np.asarray(predicted, dtype=float), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        y_log = np.where(y > 0, y * np.log(y / mu), 0.0)
    totals = pd.DataFrame({"item_id": item_ids, "y": y, "mu": mu}).groupby("item_id")[["y", "mu"]].sum()
    return {
        "deviance": float(np.mean(2 * (y_log - (y - mu)))),
        "mae": float(np.mean(np.abs(y - mu))),
        "bias": float(mu.sum() / max(y.sum(), 1e-12) - 1),
        "sku_mae": float(np.mean(np.abs(totals["y"] - totals["mu"]))),
        "sku_wape": float(np.abs(totals["y"] - totals["mu"]).sum() / max(totals["y"].sum(), 1e-12)),
        "rows": float(len(y)),
        "units": float(y.sum()),
    }


def expected_sales(demand: np.ndarray, stock: np.ndarray) -> np.ndarray:
    """E[min(D, stock)] for D ~ Poisson(demand): the units a day can sell given its stock at open.

    E[min(D, s)] = lam * P(D <= s - 2) + s * P(D >= s); unknown stock means no cap.
    """
    lam = np.asarray(demand, dtype=float)
    s = np.asarray(stock, dtype=float)
    capped = np.isfinite(s)
    s = np.where(capped, np.maximum(s, 0.0), 0.0)
    below = np.where(s >= 2, special.pdtr(np.maximum(s - 2, 0), lam), 0.0)
    at_least = np.where(s >= 1, special.pdtrc(np.maximum(s - 1, 0), lam), 0.0)
    return np.where(capped, lam * below + s * at_least, lam)


def censored_log_likelihood(units: np.ndarray, demand: np.ndarray, censored: np.ndarray) -> np.ndarray:
    """Per-day log-likelihood of what was seen: P(D = units), or P(D >= units) on a sold-out day."""
    lam = np.maximum(np.asarray(demand, dtype=float), 1e-12)
    eta = np.log(lam)
    ll, _, _ = _loglik(eta, np.asarray(units, dtype=float), np.asarray(censored, dtype=bool))
    return ll


def _scored(holdout: pd.DataFrame, demand: np.ndarray) -> dict[str, float]:
    """Score predicted demand against a later window three ways.

    Non-censored days only (the usual deviance / MAE / bias), but those are the days demand
    happened to be low enough not to sell out, so they favour a model that underestimates
    demand. Hence also: expected *sales* E[min(D, stock)] against units on every day (observable
    and unbiased for the true demand), and the censored log-likelihood of every day.
    """
    units = holdout["units"].to_numpy(dtype=float)
    items = holdout["item_id"].to_numpy()
    censored = holdout["censored"].fillna(False).to_numpy(dtype=bool)
    metrics = holdout_metrics(units[~censored], demand[~censored], items[~censored])
    stock = holdout["stock"].to_numpy(dtype=float) if "stock" in holdout.columns else np.full(len(units), np.nan)
    sales = holdout_metrics(units, expected_sales(demand, stock), items)
    metrics |= {f"sales_{k}": v for k, v in sales.items() if k in ("deviance", "mae", "bias", "sku_wape")}
    informative = ~(censored & (units <= 0))
    metrics["censored_nll"] = float(-censored_log_likelihood(units, demand, censored)[informative].mean())
    promo = holdout["on_promotion"].fillna(False).to_numpy(dtype=bool)
    if promo.any():
        promo_sales = expected_sales(demand[promo], stock[promo]).sum()
        metrics["promo_sales_bias"] = float(promo_sales / max(units[promo].sum(), 1e-12) - 1)
    return metrics


CANDIDATES: dict[str, DemandConfig] = {
    "pooled_censored": DemandConfig(),
    "censoring_ignored": DemandConfig(censoring="ignore"),
    "censored_days_excluded": DemandConfig(censoring="exclude"),
    "unpooled": DemandConfig(pooling=False),
    "trailing_reference": DemandConfig(reference="trailing"),
    "with_turnover": DemandConfig(features=FEATURES),
    "no_features": DemandConfig(features=()),
    "trend_held": DemandConfig(trend_horizon_days=0),
}


def compare_candidates(
    panel: pd.DataFrame, holdout_fraction: float = 0.2, candidates: dict[str, DemandConfig] | None = None
) -> pd.DataFrame:
    """Fit each candidate on the earlier days and score it on the later ones (one row per candidate).

    Besides the GLM variants: LightGBM with a Poisson objective and a monotone constraint on price
    (fitted on non-censored days, as trees cannot take a censored likelihood), and a naive
    baseline, each SKU's mean daily units on its non-censored training days.
    """
    train, holdout, _ = time_split(panel, holdout_fraction)
    rows = []
    for name, cfg in (candidates or CANDIDATES).items():
        started = time.perf_counter()
        model = fit_demand(train, cfg)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "candidate": name,
                **_scored(holdout, model.predict_frame(holdout)),
                "fit_seconds": seconds,
                "elasticity_global": model.b_global,
                "elasticity_sku_mean": float(model.skus["b"].mean()),
            }
        )
    started = time.perf_counter()
    predicted = _lightgbm_candidate(train, holdout)
    rows.append({"candidate": "lightgbm_poisson_monotone", **_scored(holdout, predicted)})
    rows[-1]["fit_seconds"] = time.perf_counter() - started
    exact = train[~train["censored"].fillna(False).astype(bool)]
    sku_mean = exact.groupby("item_id")["units"].mean()
    baseline = sku_mean.reindex(holdout["item_id"]).fillna(exact["units"].mean()).to_numpy()
    rows.append({"candidate": "sku_mean_baseline", **_scored(holdout, baseline)})
    return pd.DataFrame(rows).set_index("candidate")


def _lightgbm_candidate(train: pd.DataFrame, holdout: pd.DataFrame) -> np.ndarray:
    import lightgbm as lgb

    def matrix(frame: pd.DataFrame) -> pd.DataFrame:
        dates = pd.to_datetime(frame["date"])
        return pd.DataFrame(
            {
                "log_price_ratio": np.log(frame["price"] / frame["list_price"]),
                "on_promotion": frame["on_promotion"].astype(float),
                "item": pd.Categorical(frame["item_id"], categories=items),
                "category": pd.Categorical(frame["category_id"], categories=categories),
                "weekday": dates.dt.weekday,
                "trend": (dates - origin).dt.days,
                **{name: frame[name] for name in FEATURES if name in frame.columns},
            }
        )

    items, categories = np.sort(train["item_id"].unique()), np.sort(train["category_id"].unique())
    origin = pd.to_datetime(train["date"]).min()
    fit_rows = train[~train["censored"].fillna(False).astype(bool)]
    X = matrix(fit_rows)
    params = {
        "objective": "poisson",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 50,
        "lambda_l2": 1.0,
        "cat_smooth": 20,
        "verbosity": -1,
        "seed": 0,
        "monotone_constraints": [-1 if c == "log_price_ratio" else 0 for c in X.columns],
    }
    booster = lgb.train(params, lgb.Dataset(X, fit_rows["units"].to_numpy(dtype=float)), num_boost_round=300)
    return booster.predict(matrix(holdout))


# ------------------------------------------------------------------------------------------ registry


class DemandPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc face of a saved `DemandModel` (the model itself travels as an artifact directory).

    predict() takes rows of item_id, price and optionally date (default: the day after the last
    fitted day) and category_id, and returns expected_units and the coverage level per row.
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = DemandModel.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        return predict_rows(self.model, model_input)


def predict_rows(model: DemandModel, rows: pd.DataFrame) -> pd.DataFrame:
    """Expected units for (item_id, price[, date][, category_id]) rows, promotion off, one day each."""
    missing = [c for c in ("item_id", "price") if c not in rows.columns]
    if missing:
        raise ValueError(f"demand model input lacks column(s) {missing} (expected item_id, price[, date, category_id])")
    default_day = pd.Timestamp(model.last_date) + pd.Timedelta(days=1)
    days = pd.to_datetime(rows["date"]) if "date" in rows.columns else pd.Series(default_day, index=rows.index)
    items = rows["item_id"].astype(str).to_numpy(dtype=object)
    categories = rows["category_id"].to_numpy(dtype=object) if "category_id" in rows.columns else None
    prices = rows["price"].to_numpy(dtype=float)
    units = np.empty(len(rows))
    for day in days.unique():
        at = (days == day).to_numpy()
        cats = categories[at] if categories is not None else None
        units[at] = model.expected_units(items[at], prices[at, None], pd.Timestamp(day).date(), 1, cats)[:, 0, 0]
    return pd.DataFrame({"expected_units": units, "coverage": model.coverage(items, categories)}, index=rows.index)


@dataclass
class DemandResult:
    run_id: str
    version: str
    aliases: list[str]
    metrics: dict[str, float]
    model: DemandModel

    def summary(self) -> str:
        m = self.metrics
        return (
            f"holdout (last {m['holdout_days']:.0f} days) deviance {m['deviance']:.4f}, MAE {m['mae']:.4f},"
            f" bias {m['bias']:+.1%} on non-censored days; sales bias {m['sales_bias']:+.1%} on all days"
            f" (baseline deviance {m['baseline_deviance']:.4f}); elasticity {m['elasticity_global']:.2f}"
            f" ± {m['elasticity_global_se']:.2f}; {m['skus']:.0f} SKUs, fit {m['fit_seconds']:.1f}s;"
            f" version {self.version} {self.aliases} run {self.run_id}"
        )


def train_and_register(
    settings: Settings, console: Console | None = None, config: DemandConfig | None = None
) -> DemandResult:
    """Fit on the earlier 80% of days, score the rest, refit on everything, log to MLflow and register.

    The first registered version becomes @champion; later ones @challenger (same rule as the
    conversion model), so serving never silently switches to an unreviewed demand curve.
    """
    console = console or Console(stderr=True)
    cfg = config or DemandConfig()
    with console.status("building the daily sales panel"):
        panel = _as_panel(settings)
    train, holdout, cutoff = time_split(panel)
    with console.status(f"fitting the demand model on {len(train):,} SKU-days before {cutoff}"):
        early = fit_demand(train, cfg)
    demand = early.predict_frame(holdout)
    scored = _scored(holdout, demand)
    metrics = {f"holdout_{k}" if k in ("rows", "units") else k: v for k, v in scored.items()}
    exact = train[~train["censored"].fillna(False).astype(bool)]
    baseline = exact.groupby("item_id")["units"].mean().reindex(holdout["item_id"]).fillna(exact["units"].mean())
    metrics |= {f"baseline_{k}": v for k, v in _scored(holdout, baseline.to_numpy()).items() if "deviance" in k}
    holdout = holdout.assign(predicted=demand, predicted_sales=expected_sales(demand, holdout["stock"].to_numpy()))
    with console.status(f"refitting on all {len(panel):,} SKU-days"):
        model = fit_demand(panel, cfg)
    metrics |= {
        "holdout_days": float(pd.to_datetime(holdout["date"]).nunique()),
        "elasticity_global": model.b_global,
        "elasticity_global_se": model.b_global_se,
        "elasticity_sku_median": float(model.skus["b"].median()),
        "promo_effect": model.promo,
        "tau": float(np.sqrt(model.hyper["tau2"])),
        "omega": float(np.sqrt(model.hyper["omega2"])),
        "dispersion": model.hyper["phi"],
        "skus": float(len(model.skus)),
        "train_rows": float(model.info["rows"]),
        "censored_share": float(panel["censored"].mean()),
        "fit_seconds": float(model.info["fit_seconds"]),
    }
    inputs = [p for p in settings.events_dir.glob("*.parquet")]
    inputs += [p for p in (settings.items_path, settings.prices_path, settings.inventory_path) if p.exists()]
    use_tracking(settings, EXPERIMENT)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name="demand-poisson-pooled") as run:
        model_dir = model.save(Path(tmp) / "demand_model")
        mlflow.log_params({k: str(v) for k, v in asdict(cfg).items()})
        mlflow.log_params(
            {"cutoff": str(cutoff), "data_version": data_version(inputs), "last_date": str(model.last_date)}
        )
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        elasticities = model.elasticity_table()
        elasticities.to_csv(Path(tmp) / "elasticities.csv", index=False)
        plot_path = plot_demand(holdout, model, Path(tmp) / "demand.png")
        for artifact in (Path(tmp) / "elasticities.csv", plot_path):
            mlflow.log_artifact(str(artifact))
        example = pd.DataFrame(
            {"item_id": model.skus.index[:3].astype(str), "price": model.skus["reference_price"][:3]}
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=DemandPyfunc(),
            artifacts={ARTIFACT_KEY: str(model_dir)},
            registered_model_name=settings.demand_model_name,
            signature=infer_signature(example, predict_rows(model, example)),
            input_example=example,
            pip_requirements=[
                f"mlflow=={mlflow.__version__}",
                f"pandas=={pd.__version__}",
                f"numpy=={np.__version__}",
                f"scipy=={scipy.__version__}",
                f"pyarrow=={pa.__version__}",
            ],
        )
    version = str(info.registered_model_version)
    aliases = register_first_aliases(settings, settings.demand_model_name, version)
    model.version = version
    return DemandResult(run_id=run.info.run_id, version=version, aliases=aliases, metrics=metrics, model=model)


def load_champion(settings: Settings) -> tuple[DemandModel, str]:
    """The @champion demand model and its registry version (loaded by version, so the pair is consistent)."""
    use_registry(settings)
    name = settings.demand_model_name
    version = alias_version(settings, name, CHAMPION)
    if version is None:
        raise LookupError(
            f"no @champion demand model {name!r} in {settings.mlflow_tracking_uri}:"
            " run `siyu train demand` (or pricing.demand.train_and_register) first"
        )
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    model = loaded.unwrap_python_model().model
    model.version = version
    return model, version


def plot_demand(holdout: pd.DataFrame, model: DemandModel, path: Path) -> Path:
    """PNG: predicted vs actual units on the later window (daily totals, per SKU) and elasticities by category."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    daily = holdout.groupby("date")[["units", "predicted_sales", "predicted"]].sum()
    axes[0].plot(daily.index, daily["units"], "o-", label="actual units")
    axes[0].plot(daily.index, daily["predicted_sales"], "s--", label="predicted sales (stock-capped)")
    axes[0].plot(daily.index, daily["predicted"], ":", label="predicted demand")
    axes[0].set_title("later window: units per day, all SKUs")
    axes[0].legend()
    axes[0].tick_params(axis="x", rotation=45)
    per_sku = holdout.groupby("item_id")[["units", "predicted_sales"]].sum()
    top = max(per_sku.max().max(), 1.0)
    axes[1].scatter(per_sku["predicted_sales"], per_sku["units"], s=10, alpha=0.5)
    axes[1].plot([0, top], [0, top], "k--", lw=1)
    axes[1].set(xlabel="predicted sales (stock-capped)", ylabel="actual units", title="per SKU over the later window")
    table = model.elasticity_table()
    skus, cats = table[table["kind"] == "sku"], table[table["kind"] == "category"].reset_index(drop=True)
    position = {c: i for i, c in enumerate(cats["segment"])}
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, len(skus))
    axes[2].scatter(skus["category_id"].map(position) + jitter, skus["elasticity"], s=6, alpha=0.3, label="SKU")
    axes[2].errorbar(
        cats.index,
        cats["elasticity"],
        yerr=[cats["elasticity"] - cats["ci_low"], cats["ci_high"] - cats["elasticity"]],
        fmt="o",
        color="C3",
        capsize=4,
        label="category (90% interval)",
    )
    axes[2].axhline(model.b_global, color="k", lw=1, ls=":", label=f"global {model.b_global:.2f}")
    axes[2].set_xticks(cats.index, cats["segment"], rotation=45)
    axes[2].set(ylabel="own-price elasticity", title="elasticity by category")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
