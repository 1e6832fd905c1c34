"""`siyu evaluate conversion` on the real trained system: the report files, the MLflow run, clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from siyu.cli import app
from siyu.settings import Settings
from siyu.tracking import client, use_tracking
from training.conversion import EXPERIMENT, train_and_register
from training.dataset import MODEL_FEATURES

pytestmark = [pytest.mark.integration, pytest.mark.slow]
runner = CliRunner()


def test_the_champion_is_evaluated_by_history_with_the_oracle(registry: Settings, tmp_path: Path) -> None:
    version = train_and_register(registry).version
    result = runner.invoke(app, ["evaluate", "conversion", "--out", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["version"] == version
    assert set(report["by_history"]) == {"none", "1-4", "5+"}
    assert report["oracle_auc"] > report["auc"] > 0.55
    assert sum(g["rows"] for g in report["by_history"].values()) == report["rows"]
    assert set(report["baselines"]) == {"item_conversion_rate", "user_conversion_rate", "user_item_history", "combined"}
    assert report["auc"] > report["best_baseline_auc"] == report["baselines"][report["best_baseline"]]["auc"]
    assert "baseline: user_item_history" in result.output
    for name in ("evaluation.md", "reliability.png", "lift.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "5+" in result.output and "oracle_auc" in result.output
    use_tracking(registry, EXPERIMENT)
    runs = mlflow.search_runs(filter_string=f"attributes.run_name = 'evaluate-v{version}'")
    assert len(runs) >= 1 and runs["metrics.auc"].iloc[0] == pytest.approx(report["auc"])


def test_an_unknown_version_fails_with_one_sentence(registry: Settings, tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "conversion", "--version", "404", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "404" in result.output and "Traceback" not in result.output


def test_every_training_run_logs_its_provenance_and_plots(registry: Settings) -> None:
    result = train_and_register(registry)
    run = client(registry).get_run(result.run_id)
    assert len(run.data.params["data_version"]) == 16 and run.data.params["code_version"]
    logged = {artifact.path for artifact in client(registry).list_artifacts(result.run_id)}
    assert {"reliability.png", "lift.png", "shap_summary.png", "feature_importance.csv"} <= logged
    local = client(registry).download_artifacts(result.run_id, "feature_importance.csv")
    importance = pd.read_csv(local)
    assert set(importance["feature"]) == set(MODEL_FEATURES) and (importance["mean_abs_shap"] >= 0).all()
    assert importance["mean_abs_shap"].iloc[0] > 0  # something moves the predictions
