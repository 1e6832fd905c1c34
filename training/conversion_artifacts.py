"""What every conversion training run leaves beside its model: plots and tables a person checks first.

Reliability diagram and lift chart on the holdout (from the same report code as `siyu evaluate
conversion`), and feature importance three ways: LightGBM gain, split counts and mean |SHAP value|
(LightGBM's exact TreeSHAP via `pred_contrib`, on a sample of holdout rows) with a bar chart of the
SHAP ranking. Gain says what the trees used while fitting; SHAP says what moves this holdout's
predictions, and the two disagreeing is itself worth seeing.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from training.conversion_report import lift_by_decile, plot_lift, plot_reliability

SHAP_ROWS = 5_000  # holdout rows explained (TreeSHAP cost grows with rows x trees x leaves)
SHAP_SHOWN = 20


def feature_importance(booster: lgb.Booster, holdout: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per feature: gain, splits and mean |SHAP| on up to SHAP_ROWS holdout rows, by SHAP descending."""
    names = booster.feature_name()
    rows = holdout.sample(min(SHAP_ROWS, len(holdout)), random_state=seed)
    contributions = booster.predict(rows[names], pred_contrib=True)[:, :-1]  # last column: the bias
    table = pd.DataFrame(
        {
            "feature": names,
            "gain": booster.feature_importance("gain"),
            "splits": booster.feature_importance("split"),
            "mean_abs_shap": np.abs(contributions).mean(axis=0),
        }
    )
    return table.sort_values("mean_abs_shap", ascending=False, ignore_index=True)


def plot_shap_summary(importance: pd.DataFrame, path: Path) -> Path:
    top = importance.head(SHAP_SHOWN).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(top) + 1.2))
    ax.barh(top["feature"], top["mean_abs_shap"], color="#4c72b0")
    ax.set(xlabel="mean |SHAP value| (log-odds)", title="What moves the holdout's predictions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_run_artifacts(
    booster: lgb.Booster, holdout: pd.DataFrame, directory: Path, oracle: np.ndarray | None = None
) -> list[Path]:
    """Reliability, lift, importance table and SHAP chart for `holdout` under `directory`."""
    labels = holdout["label"].to_numpy()
    probs = booster.predict(holdout[booster.feature_name()])
    importance = feature_importance(booster, holdout)
    importance.to_csv(directory / "feature_importance.csv", index=False)
    return [
        plot_reliability(labels, probs, directory / "reliability.png", oracle),
        plot_lift(lift_by_decile(labels, probs), directory / "lift.png"),
        directory / "feature_importance.csv",
        plot_shap_summary(importance, directory / "shap_summary.png"),
    ]
