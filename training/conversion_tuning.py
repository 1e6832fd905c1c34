"""`siyu tune conversion`: Optuna TPE over LightGBM's parameters, pruned per boosting round, each trial in MLflow.

The objective is AUC on the last 20% (in time) of the training window, never the holdout: the holdout
stays untouched for the registered model's own metrics and for the champion gate. Trials report their
validation AUC every round, so Optuna's LightGBM pruning callback (optuna-integration) stops a trial
that is already behind the median of earlier trials at the same round. The best parameters are then
trained and registered like any other run (as @challenger; `siyu promote` decides).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import mlflow
import optuna
from optuna_integration import LightGBMPruningCallback
from rich.console import Console

from features.repo import feature_store
from siyu.metrics import auc
from siyu.settings import Settings
from siyu.tracking import use_tracking
from training.conversion import (
    DEFAULT_PARAMS,
    EARLY_STOPPING,
    EXPERIMENT,
    NUM_BOOST_ROUND,
    ConversionResult,
    monotone_constraints,
    train_and_register,
)
from training.dataset import MODEL_FEATURES, build_training_set

VALID_SHARE = 0.2  # the training window's latest share that scores trials


@dataclass
class ConversionTuning:
    best_params: dict[str, float | int]
    best_auc: float
    trials: int
    pruned: int
    tune_seconds: float
    registration: ConversionResult


def suggest_params(trial: optuna.Trial) -> dict[str, float | int]:
    return {
        "num_leaves": trial.suggest_int("num_leaves", 15, 255, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 500, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        "min_gain_to_split": trial.suggest_float("min_gain_to_split", 0.0, 1.0),
    }


def tune_conversion(
    settings: Settings,
    n_trials: int = 30,
    timeout: float | None = None,
    max_rows: int | None = 400_000,
    console: Console | None = None,
    on_trial: Callable[[int, str, float | None], None] | None = None,
) -> ConversionTuning:
    """Search, then register the best parameters' model; raises ValueError when the window cannot be split."""
    console = console or Console(stderr=True)
    use_tracking(settings, EXPERIMENT)
    with console.status("building the point-in-time training set"):
        train = build_training_set(settings, feature_store(settings), max_rows=max_rows, seed=settings.seed).train
    cut = int(len(train) * (1 - VALID_SHARE))
    fit_rows, valid_rows = train.iloc[:cut], train.iloc[cut:]
    for name, rows in (("fitting", fit_rows), ("validation", valid_rows)):
        if rows.empty or rows["label"].nunique() < 2:
            raise ValueError(f"the {name} part of the training window has {len(rows)} rows and one class: cannot tune")
    started = time.perf_counter()
    # Trials change min_data_in_leaf, so the bins must not be pre-filtered for the first trial's value.
    fit_set = lgb.Dataset(
        fit_rows[list(MODEL_FEATURES)], fit_rows["label"], free_raw_data=False, params={"feature_pre_filter": False}
    )
    valid_set = lgb.Dataset(valid_rows[list(MODEL_FEATURES)], valid_rows["label"], reference=fit_set)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=settings.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=30),
    )

    def objective(trial: optuna.Trial) -> float:
        params = {
            **DEFAULT_PARAMS,
            **suggest_params(trial),
            "metric": "auc",
            "seed": settings.seed,
            "monotone_constraints": monotone_constraints(MODEL_FEATURES),
        }
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.log_params(trial.params)
            booster = lgb.train(
                params,
                fit_set,
                num_boost_round=NUM_BOOST_ROUND,
                valid_sets=[valid_set],
                valid_names=["valid"],
                callbacks=[
                    lgb.early_stopping(EARLY_STOPPING, verbose=False),
                    LightGBMPruningCallback(trial, "auc", valid_name="valid"),
                ],
            )
            value = auc(valid_rows["label"].to_numpy(), booster.predict(valid_rows[list(MODEL_FEATURES)]))
            mlflow.log_metrics({"valid_auc": value, "best_iteration": float(booster.best_iteration)})
        return value

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(trial.number, trial.state.name.lower(), trial.value)

    with mlflow.start_run(run_name="conversion-tuning"):
        mlflow.log_params({"n_trials": n_trials, "timeout": str(timeout), "valid_share": VALID_SHARE})
        study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[report], catch=())
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not completed:
            raise ValueError("no trial completed (all pruned or the timeout came first): nothing to register")
        tune_seconds = time.perf_counter() - started
        mlflow.log_params({f"best_{k}": v for k, v in study.best_params.items()})
        mlflow.log_metrics({"best_valid_auc": study.best_value, "tune_seconds": tune_seconds})
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    registration = train_and_register(settings, params=study.best_params, max_rows=max_rows, console=console)
    return ConversionTuning(study.best_params, study.best_value, len(study.trials), pruned, tune_seconds, registration)
