"""`siyu recommend batch`: a reach list for a tier from the real trained system, through the CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.recommend.reach import COLUMNS, users_in_tier
from siyu.cli import app
from siyu.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

runner = CliRunner()


def _env(settings: Settings) -> dict[str, str]:
    names = ("data_dir", "mlflow_tracking_uri", "mlflow_artifact_root", "feast_project", "online_store")
    return {"COLUMNS": "200", **{f"SIYU_{name.upper()}": str(getattr(settings, name)) for name in names}}


def test_a_tiers_reach_list_has_k_items_per_user_with_a_time_and_channel(trained_system, tmp_path: Path) -> None:
    settings, _ = trained_system
    tier = users_in_tier(settings, None)["tier"].value_counts().index[0]
    out = tmp_path / "list.parquet"

    result = runner.invoke(
        app, ["recommend", "batch", "--tier", tier, "--k", "3", "--limit", "25", "--out", str(out)], env=_env(settings)
    )

    assert result.exit_code == 0, result.output
    assert "25 users, 75 rows" in result.output and "users/s" in result.output
    rows = pd.read_parquet(out)
    assert list(rows.columns) == COLUMNS
    assert set(rows["tier"]) == {tier} and rows["user_id"].nunique() == 25
    assert rows.groupby("user_id")["rank"].apply(list).map(lambda r: r == [1, 2, 3]).all()
    assert rows["best_hour"].between(0, 23).all() and rows["channel"].notna().all()
    assert not rows.duplicated(["user_id", "item_id"]).any()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--out", "list.txt"], "--out must end in .parquet or .csv"), (["--tier", "vip", "--out", "x.csv"], "vip")],
)
def test_bad_options_are_named(trained_system, args: list[str], message: str) -> None:
    settings, _ = trained_system
    result = runner.invoke(app, ["recommend", "batch", *args], env=_env(settings))
    assert result.exit_code == 2 and message in result.output
