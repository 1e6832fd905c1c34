"""Scoring demand forecasts on a later window, and the comparison of candidate models behind the defaults."""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd
from scipy import special

from pricing.demand.config import FEATURES, DemandConfig
from pricing.demand.fit import fit_demand
from pricing.demand.likelihood import _loglik


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
