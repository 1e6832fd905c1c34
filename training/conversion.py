"""The conversion model: P(purchase | user, item, shown price, context) with LightGBM.

Trained on the earlier part of a point-in-time training set and scored on the later part
(time-based holdout). Price features carry monotone constraints so a higher price never
raises predicted conversion. Every run is logged to MLflow and registered; the first version
becomes @champion, later ones @challenger until `siyu promote` decides.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from rich.console import Console

from features.repo import feature_store, source_paths
from siyu.metrics import auc, expected_calibration_error, logloss
from siyu.settings import Settings
from siyu.tracking import Registration, code_version, data_version, register_first_aliases, use_tracking
from training.conversion_artifacts import write_run_artifacts
from training.dataset import MODEL_FEATURES, PRICE_FEATURES, TrainingSet, build_training_set

EXPERIMENT = "conversion"
DEFAULT_PARAMS: dict[str, float | int | str] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbosity": -1,
}
NUM_BOOST_ROUND = 400
EARLY_STOPPING = 30


@dataclass
class ConversionResult(Registration):
    def summary(self) -> str:
        m = self.metrics
        line = f"holdout AUC {m['auc']:.4f}, logloss {m['logloss']:.4f}, ECE {m['ece']:.4f}"
        if "oracle_auc" in m:
            line += f" (oracle AUC {m['oracle_auc']:.4f}, logloss {m['oracle_logloss']:.4f})"
        return f"{line}; version {self.version} {self.aliases} run {self.run_id}"


def monotone_constraints(features: tuple[str, ...]) -> list[int]:
    return [-1 if f in PRICE_FEATURES else 0 for f in features]


def fit(
    train: pd.DataFrame, params: dict | None = None, seed: int = 0, features: tuple[str, ...] = MODEL_FEATURES
) -> lgb.Booster:
    """Fit on `train`, holding out its last 10% in time for early stopping (never the evaluation rows).

    `features` defaults to what serving computes; experiments pass a longer list to measure a candidate feature.
    """
    split = int(len(train) * 0.9)
    fit_rows, stop_rows = train.iloc[:split], train.iloc[split:]
    full = {
        **DEFAULT_PARAMS,
        **(params or {}),
        "seed": seed,
        "monotone_constraints": monotone_constraints(features),
    }
    fit_set = lgb.Dataset(fit_rows[list(features)], fit_rows["label"], free_raw_data=False)
    stop_set = lgb.Dataset(stop_rows[list(features)], stop_rows["label"], reference=fit_set)
    return lgb.train(
        full,
        fit_set,
        num_boost_round=NUM_BOOST_ROUND,
        valid_sets=[stop_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)],
    )


def evaluate(
    booster: lgb.Booster,
    holdout: pd.DataFrame,
    truth: pd.DataFrame | None,
    features: tuple[str, ...] = MODEL_FEATURES,
) -> dict[str, float]:
    """Holdout metrics, plus the same metrics of the true probabilities when the world's truth is known."""
    probs = booster.predict(holdout[list(features)])
    labels = holdout["label"].to_numpy()
    metrics = {
        "auc": auc(labels, probs),
        "logloss": logloss(labels, probs),
        "ece": expected_calibration_error(labels, probs),
        "holdout_rows": float(len(holdout)),
        "holdout_positive_rate": float(labels.mean()),
    }
    oracle = oracle_probabilities(holdout, truth)
    if oracle is not None:
        metrics["oracle_auc"] = auc(labels, oracle)
        metrics["oracle_logloss"] = logloss(labels, oracle)
    return metrics


def oracle_probabilities(holdout: pd.DataFrame, truth: pd.DataFrame | None) -> np.ndarray | None:
    """The world's true P(purchase) of each holdout row (x in stock), in row order; None without full truth."""
    if truth is None or truth.empty:
        return None
    keys = holdout[["session_id", "item_id"]].reset_index(drop=True).assign(_row=np.arange(len(holdout)))
    joined = keys.merge(truth.drop_duplicates(["session_id", "item_id"]), on=["session_id", "item_id"], how="inner")
    if len(joined) != len(holdout):
        return None
    joined = joined.sort_values("_row")
    return (joined["true_purchase_prob"] * joined["in_stock"]).to_numpy()


def load_truth(settings: Settings) -> pd.DataFrame | None:
    path = settings.truth_impressions_path
    if not path.exists():
        return None
    return pd.read_parquet(path, columns=["session_id", "item_id", "true_purchase_prob", "in_stock"])


def train_and_register(
    settings: Settings,
    params: dict | None = None,
    max_rows: int | None = 400_000,
    console: Console | None = None,
    features: tuple[str, ...] = MODEL_FEATURES,
) -> ConversionResult:
    console = console or Console(stderr=True)
    use_tracking(settings, EXPERIMENT)  # an unreachable registry fails here, before minutes of data work
    store = feature_store(settings)
    with console.status("building the point-in-time training set"):
        data: TrainingSet = build_training_set(settings, store, max_rows=max_rows, seed=settings.seed)
    train, holdout = data.train, data.holdout
    if train.empty or holdout.empty:
        raise ValueError(
            f"training window too small to learn from: {len(train)} train rows, {len(holdout)} holdout rows"
        )
    if train["label"].nunique() < 2:
        outcome = "bought" if train["label"].iat[0] else "not bought"
        raise ValueError(f"all {len(train):,} training impressions were {outcome}: one class, nothing to learn")
    started = time.perf_counter()
    with console.status(f"training LightGBM on {len(train):,} rows"):
        booster = fit(train, params, seed=settings.seed, features=features)
    train_seconds = time.perf_counter() - started
    truth = load_truth(settings)
    metrics = evaluate(booster, holdout, truth, features=features) | {
        "train_seconds": train_seconds,
        "train_rows": float(len(train)),
        "best_iteration": float(booster.best_iteration),
    }
    inputs = [*settings.events_dir.glob("*.parquet"), *source_paths(settings).values()]
    with mlflow.start_run(run_name="conversion-lightgbm") as run:
        mlflow.log_params({**DEFAULT_PARAMS, **(params or {}), "features": ",".join(features)})
        mlflow.log_params({"cutoff": str(data.cutoff), "data_version": data_version(inputs), "seed": settings.seed})
        mlflow.log_param("code_version", code_version())
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_run_artifacts(booster, holdout, Path(tmp), oracle_probabilities(holdout, truth)):
                mlflow.log_artifact(str(path))
        info = mlflow.lightgbm.log_model(
            booster,
            name="model",
            registered_model_name=settings.conversion_model_name,
            pip_requirements=[f"lightgbm=={lgb.__version__}"],
        )
    version = str(info.registered_model_version)
    aliases = register_first_aliases(settings, settings.conversion_model_name, version)
    return ConversionResult(run_id=run.info.run_id, version=version, aliases=aliases, metrics=metrics)
