"""`siyu tune conversion` on the real trained system: trials in MLflow, the best registered as a challenger."""

from __future__ import annotations

import mlflow
import pytest
from typer.testing import CliRunner

from siyu.cli import app
from siyu.settings import Settings
from siyu.tracking import CHALLENGER, CHAMPION, alias_version, use_tracking
from training.conversion import EXPERIMENT, train_and_register

pytestmark = [pytest.mark.integration, pytest.mark.slow]
runner = CliRunner()


def test_tuning_logs_every_trial_and_registers_a_challenger_only(registry: Settings) -> None:
    name = registry.conversion_model_name
    champion = train_and_register(registry).version
    result = runner.invoke(app, ["tune", "conversion", "--trials", "6"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "6 trials" in result.output and "best valid AUC" in result.output
    assert alias_version(registry, name, CHAMPION) == champion  # tuning never crowns: the gate does
    challenger = alias_version(registry, name, CHALLENGER)
    assert challenger is not None and challenger != champion
    use_tracking(registry, EXPERIMENT)
    trials = mlflow.search_runs(filter_string="attributes.run_name LIKE 'trial-%'")
    assert len(trials) == 6
    assert trials["metrics.valid_auc"].dropna().between(0.5, 1.0).all()
    parent = mlflow.search_runs(filter_string="attributes.run_name = 'conversion-tuning'")
    assert parent["metrics.best_valid_auc"].iloc[0] == pytest.approx(trials["metrics.valid_auc"].max())
