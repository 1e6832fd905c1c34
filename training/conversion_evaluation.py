"""`siyu evaluate conversion`: a registered conversion model scored on today's time-based holdout.

The holdout is the same point-in-time set training builds (its last 20% of impressions in time). The
report (Markdown, JSON and two plots) goes to a directory and to an MLflow run beside the model's own,
so the numbers a person reads are the numbers the registry keeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from siyu.settings import Settings
from siyu.tracking import CHAMPION, alias_version, use_tracking
from training.conversion import EXPERIMENT, load_truth, oracle_probabilities
from training.conversion_baselines import baseline_predictions
from training.conversion_contest import load_version, predict_holdout, todays_training_set
from training.conversion_report import baseline_report, evaluation, markdown, plot_lift, plot_reliability


@dataclass
class ConversionEvaluation:
    version: str
    report: dict[str, object]
    files: list[Path]


def evaluate_conversion(settings: Settings, out_dir: Path, version: str | None = None) -> ConversionEvaluation:
    """Score `version` (default: @champion) on today's holdout; write and log the report.

    Raises LookupError when there is no such model, ValueError when the holdout is empty or one-class.
    """
    version = version or alias_version(settings, settings.conversion_model_name, CHAMPION)
    if version is None:
        raise LookupError(f"no @{CHAMPION} conversion model is registered: run `siyu train conversion` first")
    try:
        booster = load_version(settings, version)
    except MlflowException as exc:
        raise LookupError(f"version {version} of {settings.conversion_model_name!r} cannot be loaded: {exc}") from exc
    data = todays_training_set(settings)
    holdout = data.holdout
    labels = holdout["label"].to_numpy()
    probs = predict_holdout(booster, holdout, version)
    oracle = oracle_probabilities(holdout, load_truth(settings))
    report = evaluation(labels, probs, holdout["user_sessions_before"].to_numpy(), oracle)
    report |= baseline_report(labels, baseline_predictions(data.train, holdout))
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = [
        f"model {settings.conversion_model_name} version {version}; holdout = the last 20% of online views in time"
        f" ({len(holdout):,} rows)",
        "oracle = the world's true purchase probability x in stock" if oracle is not None else "no oracle: real data",
        "baselines fitted on the training rows, scored on the same holdout rows: the item's and the user's"
        " conversion rates, the user's history with the item (viewed / carted / favourited / bought before),"
        " and the three combined",
    ]
    files = [
        plot_reliability(labels, probs, out_dir / "reliability.png", oracle),
        plot_lift(report["lift"], out_dir / "lift.png"),  # type: ignore[arg-type]
    ]
    (out_dir / "evaluation.md").write_text(markdown(report, "conversion evaluation", notes))
    (out_dir / "evaluation.json").write_text(json.dumps({"version": version, **report}, indent=2, default=float))
    files += [out_dir / "evaluation.md", out_dir / "evaluation.json"]
    use_tracking(settings, EXPERIMENT)
    with mlflow.start_run(run_name=f"evaluate-v{version}"):
        mlflow.log_param("model_version", version)
        flat = {k: v for k, v in report.items() if isinstance(v, float) and np.isfinite(v)}
        for name, entry in report["baselines"].items():  # type: ignore[union-attr]
            flat |= {f"baseline_{name}_{k}": v for k, v in entry.items() if np.isfinite(v)}
        for group, entry in report["by_history"].items():  # type: ignore[union-attr]
            name = group.replace("+", "plus")  # MLflow metric names take no "+"
            flat |= {f"history_{name}_{k}": v for k, v in entry.items() if np.isfinite(v)}
        mlflow.log_metrics(flat)
        for path in files:
            mlflow.log_artifact(str(path))
    return ConversionEvaluation(version, report, files)
