"""The fitted demand model: expected units per SKU, day and price, elasticities, and its parquet + json storage."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import special

from pricing.demand.config import CATEGORY_FILE, ETA_BOUNDS, MODEL_FILE, SKU_FILE, DemandConfig
from pricing.demand.design import _Layout, _prepared, _Standardiser, trend_basis

if TYPE_CHECKING:  # fit imports this module to wrap its estimates, so only the type checker imports fit
    from pricing.demand.fit import _Fitted


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
