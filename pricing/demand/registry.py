"""The demand model in MLflow: train, score and register it, load the champion; its pyfunc face and plot.

`DemandPyfunc` is pickled by reference to this module (`pricing.demand.registry.DemandPyfunc`), so it must
stay importable here; `pricing.demand` re-exports it for versions registered under its old path.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import scipy
from mlflow.models import infer_signature
from rich.console import Console

from pricing.demand.config import ARTIFACT_KEY, EXPERIMENT, DemandConfig
from pricing.demand.design import _as_panel
from pricing.demand.evaluation import _scored, expected_sales, time_split
from pricing.demand.fit import fit_demand
from pricing.demand.model import DemandModel
from siyu.settings import Settings
from siyu.tracking import (
    Registration,
    code_version,
    data_version,
    load_champion_pyfunc,
    register_first_aliases,
    use_tracking,
)


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
class DemandResult(Registration):
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
            {
                "cutoff": str(cutoff),
                "data_version": data_version(inputs),
                "code_version": code_version(),
                "last_date": str(model.last_date),
            }
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
    wrapper, version = load_champion_pyfunc(
        settings, settings.demand_model_name, "`siyu train demand` (or pricing.demand.train_and_register)"
    )
    model = wrapper.model
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
