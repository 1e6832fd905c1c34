"""The demand model through real MLflow: a run with metrics and artifacts, @champion, and a faithful reload."""

from __future__ import annotations

import shutil
from datetime import timedelta

import mlflow
import numpy as np
import pandas as pd
import pytest

from pricing.demand.registry import DemandResult, load_champion, train_and_register
from siyu.settings import Settings
from siyu.tracking import CHALLENGER, CHAMPION, alias_version, client

pytestmark = pytest.mark.integration


@pytest.fixture
def world(small_world: Settings, settings: Settings) -> Settings:
    """A private copy of the small world with its own MLflow store."""
    shutil.copytree(small_world.data_dir, settings.data_dir)
    return settings


def test_load_champion_without_a_model_names_the_command(settings: Settings) -> None:
    with pytest.raises(LookupError, match="siyu train demand"):
        load_champion(settings)


def test_train_and_register_logs_a_run_and_serves_the_same_model(world: Settings) -> None:
    result = train_and_register(world)
    assert isinstance(result, DemandResult)
    assert result.version == "1" and set(result.aliases) == {CHAMPION, CHALLENGER}
    for name in ("deviance", "mae", "bias", "sales_bias", "censored_nll", "elasticity_global", "baseline_deviance"):
        assert np.isfinite(result.metrics[name]), name
    assert result.metrics["elasticity_global"] <= 0
    assert "version 1" in result.summary()

    run = client(world).get_run(result.run_id)
    assert run.data.params["data_version"] and run.data.params["censoring"] == "likelihood"
    assert run.data.metrics["train_rows"] > run.data.metrics["holdout_rows"] > 0
    artifacts = {a.path for a in client(world).list_artifacts(result.run_id)}
    assert {"demand.png", "elasticities.csv"} <= artifacts
    assert alias_version(world, world.demand_model_name, CHAMPION) == "1"

    model, version = load_champion(world)
    assert version == "1" and model.version == "1"
    trained = result.model
    items = np.array([*trained.skus.index[:10], "never-seen"])
    prices = np.outer(np.r_[trained.reference_price(items[:-1]), 50.0], np.linspace(0.6, 1.3, 8))
    start = trained.last_date + timedelta(days=1)
    np.testing.assert_allclose(
        model.expected_units(items, prices, start, 3), trained.expected_units(items, prices, start, 3)
    )
    np.testing.assert_allclose(model.elasticity(items)[0], trained.elasticity(items)[0])

    # The pyfunc face answers the same, row by row.
    pyfunc = mlflow.pyfunc.load_model(f"models:/{world.demand_model_name}@{CHAMPION}")
    rows = pd.DataFrame({"item_id": items[:3], "price": prices[:3, 2], "date": [start] * 3})
    served = pyfunc.predict(rows)
    np.testing.assert_allclose(
        served["expected_units"], trained.expected_units(items[:3], prices[:3, 2:3], start, 1)[:, 0, 0]
    )

    second = train_and_register(world)
    assert second.version == "2" and second.aliases == [CHALLENGER]
    assert load_champion(world)[1] == "1"
