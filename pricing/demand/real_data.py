"""Own-price elasticities measured on the shared real price data, as a yardstick for the demand model.

The synthetic world's elasticities are whatever its utility model implies; these three public
data sets say what real retail demand looks like (orange juice is the textbook case: about -2
to -3 per brand). Each estimate is a log-log least-squares regression with the controls the
data allow, and heteroskedasticity-robust (HC1) standard errors: weekly store sales are far
noisier in big stores and on feature weeks, and plain OLS errors would be too narrow.

The regressions are a few lines of numpy (coefficients and a sandwich covariance), so they do
not justify a statsmodels dependency.

Files (read-only; see SOURCES.md beside them):
- `pricing/dominicks_oj_bds/oj.csv`: sales, price, brand, feat. `sales` is in units, not logs
  (64 .. 716,416, mostly multiples of 64: cases of 64 cartons), so it is logged here.
- `pricing/oj_weekly_4brand/oj.csv`: week, four brands' sales and prices; CR-only line endings.
- `pricing/kaggle_retail_price/retail_price.csv`: monthly qty and unit_price per product.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

DOMINICKS_OJ = Path("pricing/dominicks_oj_bds/oj.csv")
OJ_FOUR_BRANDS = Path("pricing/oj_weekly_4brand/oj.csv")
RETAIL_PRICE = Path("pricing/kaggle_retail_price/retail_price.csv")
# Column names as published (including the "Folrida" typo) -> brand.
OJ_BRANDS: dict[str, tuple[str, str]] = {
    "tropicana": ("TropSales", "PriceTrop"),
    "florida_natural": ("FolridaSales", "PriceFlorida"),
    "minute_maid": ("MMSales", "PriceMM"),
    "private_label": ("PLSales", "PricePL"),
}
CI_LEVEL = 0.95
ELASTICITY_COLUMNS = ("dataset", "segment", "elasticity", "std_error", "ci_low", "ci_high", "n_obs", "controls")


def shared_data_dir() -> Path:
    """The read-only real samples: $SIYU_SHARED_DATA, else shared/data beside the checkout."""
    candidates = [Path(os.environ["SIYU_SHARED_DATA"])] if os.environ.get("SIYU_SHARED_DATA") else []
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _read_csv(relative: Path, columns: tuple[str, ...], root: Path | None) -> pd.DataFrame:
    """Read one sample with universal newlines (one file is CR-only) and check its columns are numeric."""
    path = (root or shared_data_dir()) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (set SIYU_SHARED_DATA to the directory holding `pricing/`)")
    try:
        frame = pd.read_csv(io.StringIO(path.read_text(encoding="utf-8")))
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{path} is not a readable CSV: {exc}") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"column(s) {missing} missing in {path} (expected {list(columns)}, found {list(frame.columns)})"
        )
    frame.attrs["source"] = str(path)
    return frame


def _positive(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column that must be a positive number on every row; the error names the first bad line."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        line = int(np.flatnonzero(bad)[0]) + 2  # 1-based, after the header
        raise ValueError(
            f"{frame.attrs.get('source', 'data')}:{line}: column `{column}` must be a positive number, "
            f"got {frame[column].iloc[line - 2]!r}"
        )
    return values


def load_dominicks_oj(root: Path | None = None) -> pd.DataFrame:
    """Dominick's weekly store-level orange juice: sales (units), price, brand, feat (0/1)."""
    frame = _read_csv(DOMINICKS_OJ, ("sales", "price", "brand", "feat"), root)
    return pd.DataFrame(
        {
            "sales": _positive(frame, "sales"),
            "price": _positive(frame, "price"),
            "brand": frame["brand"].astype(str),
            "feat": pd.to_numeric(frame["feat"], errors="coerce").fillna(0).to_numpy(dtype=float),
        }
    )


def load_oj_four_brands(root: Path | None = None) -> pd.DataFrame:
    """115 weeks of four brands' sales and prices, long: week, brand, sales, price, log_price_<brand>."""
    columns = tuple(c for pair in OJ_BRANDS.values() for c in pair)
    frame = _read_csv(OJ_FOUR_BRANDS, ("week", *columns), root)
    log_prices = {f"log_price_{b}": np.log(_positive(frame, price)) for b, (_, price) in OJ_BRANDS.items()}
    parts = [
        pd.DataFrame(
            {"week": frame["week"], "brand": brand, "sales": _positive(frame, sales), "price": _positive(frame, price)}
            | log_prices
        )
        for brand, (sales, price) in OJ_BRANDS.items()
    ]
    return pd.concat(parts, ignore_index=True)


def load_retail_price(root: Path | None = None) -> pd.DataFrame:
    """Monthly product sales: product_id, category, month, qty, unit_price."""
    frame = _read_csv(RETAIL_PRICE, ("product_id", "product_category_name", "month_year", "qty", "unit_price"), root)
    return pd.DataFrame(
        {
            "product_id": frame["product_id"].astype(str),
            "category": frame["product_category_name"].astype(str),
            "month": frame["month_year"].astype(str),
            "qty": _positive(frame, "qty"),
            "unit_price": _positive(frame, "unit_price"),
        }
    )


def log_log_elasticity(
    log_units: np.ndarray, log_price: np.ndarray, controls: np.ndarray
) -> tuple[float, float, int, int]:
    """OLS of log units on log price plus controls (an intercept is added).

    Returns the slope, its HC1 standard error, the number of rows and the residual degrees of freedom.
    """
    n = len(log_units)
    X = np.column_stack([log_price, np.ones(n), controls.reshape(n, -1)])
    if np.linalg.matrix_rank(X) < X.shape[1]:
        X = X[:, _independent_columns(X)]
    coef, *_ = np.linalg.lstsq(X, log_units, rcond=None)
    resid = log_units - X @ coef
    bread = np.linalg.inv(X.T @ X)
    meat = X.T @ (X * resid[:, None] ** 2)
    dof = max(n - X.shape[1], 1)
    cov = bread @ meat @ bread * n / dof
    return float(coef[0]), float(np.sqrt(cov[0, 0])), n, dof


def _independent_columns(X: np.ndarray) -> np.ndarray:
    """Keep the first column and each later one that adds rank (dummies that duplicate another)."""
    keep: list[int] = []
    for j in range(X.shape[1]):
        if np.linalg.matrix_rank(X[:, [*keep, j]]) > len(keep):
            keep.append(j)
    return np.array(keep)


def _row(dataset: str, segment: str, estimate: tuple[float, float, int, int], controls: str) -> dict[str, object]:
    elasticity, se, n, dof = estimate
    t = stats.t.ppf(0.5 + CI_LEVEL / 2, df=dof)
    return {
        "dataset": dataset,
        "segment": segment,
        "elasticity": elasticity,
        "std_error": se,
        "ci_low": elasticity - t * se,
        "ci_high": elasticity + t * se,
        "n_obs": n,
        "controls": controls,
    }


def dominicks_elasticities(root: Path | None = None) -> list[dict[str, object]]:
    """Per brand: log sales on log price, with the feature-ad flag as control (ads move sales and price)."""
    data = load_dominicks_oj(root)
    return [
        _row(
            "dominicks_oj",
            brand,
            log_log_elasticity(
                np.log(part["sales"].to_numpy()), np.log(part["price"].to_numpy()), part[["feat"]].to_numpy()
            ),
            "feat",
        )
        for brand, part in data.groupby("brand", sort=True)
    ]


def four_brand_elasticities(root: Path | None = None) -> list[dict[str, object]]:
    """Per brand: own log price, with the other three brands' log prices as controls (substitutes)."""
    data = load_oj_four_brands(root)
    rows = []
    for brand, part in data.groupby("brand", sort=False):
        others = [f"log_price_{b}" for b in OJ_BRANDS if b != brand]
        estimate = log_log_elasticity(
            np.log(part["sales"].to_numpy()), np.log(part["price"].to_numpy()), part[others].to_numpy()
        )
        rows.append(_row("oj_weekly_4brand", str(brand), estimate, "cross prices"))
    return rows


def retail_price_elasticities(root: Path | None = None) -> list[dict[str, object]]:
    """Per category, pooled over its products with product fixed effects (within-product price changes)."""
    data = load_retail_price(root)
    rows = []
    for category, part in data.groupby("category", sort=True):
        dummies = pd.get_dummies(part["product_id"], drop_first=True, dtype=float).to_numpy()
        estimate = log_log_elasticity(np.log(part["qty"].to_numpy()), np.log(part["unit_price"].to_numpy()), dummies)
        rows.append(_row("kaggle_retail_price", str(category), estimate, "product fixed effects"))
    return rows


def real_elasticities(root: Path | None = None) -> pd.DataFrame:
    """Own-price elasticities with 95% intervals for every data set and segment (brand or category)."""
    rows = [*dominicks_elasticities(root), *four_brand_elasticities(root), *retail_price_elasticities(root)]
    return pd.DataFrame(rows, columns=list(ELASTICITY_COLUMNS))
