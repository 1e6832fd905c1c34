"""`siyu price optimise` as the pricing team runs it: exact on the textbook problem, clear on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from siyu.cli import app
from siyu.settings import Settings

runner = CliRunner()
HORIZON = 6


def _textbook_value(prices: np.ndarray, demand: np.ndarray, stock: int, salvage: float) -> float:
    """V_t(s) = max_p E[p min(D, s) + V_{t+1}(s - min(D, s))], V_T(s) = salvage s; D ~ Poisson(demand[t, p])."""
    periods = demand.shape[0]
    value = salvage * np.arange(stock + 1, dtype=float)
    for t in range(periods - 1, -1, -1):
        new = np.empty_like(value)
        for s in range(stock + 1):
            best = -np.inf
            for j, price in enumerate(prices):
                d = np.arange(s)
                pmf = stats.poisson.pmf(d, demand[t, j])
                tail = stats.poisson.sf(s - 1, demand[t, j]) if s > 0 else 1.0
                q = (pmf * (price * d + value[s - d])).sum() + tail * (price * s + value[0])
                best = max(best, q)
            new[s] = best
        value = new
    return float(value[stock])


def _skus(tmp_path: Path, **columns: list) -> Path:
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "stock": [12, 3, 0],
            "cost": [4.0, 10.0, 2.0],
            "current_price": [9.9, 19.9, 5.0],
            "salvage_value": [1.0, 0.0, 0.5],
            **columns,
        }
    )
    path = tmp_path / "skus.csv"
    frame.to_csv(path, index=False)
    return path


def _demand(tmp_path: Path, per_period: bool = True) -> tuple[Path, pd.DataFrame]:
    rng = np.random.default_rng(4)
    rows = []
    for item, base in (("a", 9.9), ("b", 19.9), ("c", 5.0)):
        for price in base * np.array([0.6, 0.8, 1.0, 1.2]):
            for period in range(HORIZON) if per_period else [None]:
                mean = 3.0 * (price / base) ** -2 * (1 + 0.3 * rng.random())
                rows.append({"item_id": item, "price": round(price, 2), "expected_units": mean, "period": period})
    frame = pd.DataFrame(rows)
    if not per_period:
        frame = frame.drop(columns="period")
    path = tmp_path / "demand.parquet"
    frame.to_parquet(path, index=False)
    return path, frame


def _optimise(settings: Settings, *args: str):
    return runner.invoke(
        app,
        ["price", "optimise", *args, "--data-dir", str(settings.data_dir)],
        env={"SIYU_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri},
    )


def test_textbook_problem_is_solved_exactly(settings: Settings, tmp_path: Path) -> None:
    demand_path, demand = _demand(tmp_path)
    out = tmp_path / "schedule.parquet"
    args = ["--input", str(_skus(tmp_path)), "--demand", str(demand_path), "--horizon", str(HORIZON)]
    result = _optimise(settings, *args, "--rules", "none", "--out", str(out))
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["skus"] == 3 and line["solve_seconds"] >= 0 and line["expected_revenue"] > 0
    schedule = pd.read_parquet(out).set_index("item_id")
    skus = pd.read_csv(_skus(tmp_path)).set_index("item_id")
    for item in ("a", "b", "c"):
        rows = demand[demand["item_id"] == item]
        cube = rows.pivot_table(index="period", columns="price", values="expected_units")
        exact = _textbook_value(
            cube.columns.to_numpy(), cube.to_numpy(), int(skus.at[item, "stock"]), skus.at[item, "salvage_value"]
        )
        assert schedule.at[item, "expected_value"] == pytest.approx(exact, rel=1e-6, abs=1e-9)
    assert (schedule["fluid_bound"] >= schedule["expected_value"] - 1e-9).all()
    assert schedule.at["c", "expected_value"] == 0.0  # no stock, nothing to earn


def test_stationary_forecast_and_default_rules_never_price_below_cost(settings: Settings, tmp_path: Path) -> None:
    demand_path, _ = _demand(tmp_path, per_period=False)
    out = tmp_path / "schedule.csv"
    skus = _skus(tmp_path, floor=[None, 15.0, None], markdown_only=[True, False, False])
    result = _optimise(settings, "--input", str(skus), "--demand", str(demand_path), "--out", str(out))
    assert result.exit_code == 0, result.output
    schedule = pd.read_csv(out).set_index("item_id")
    assert schedule.at["a", "price_now"] <= 9.9 + 1e-9  # markdown-only from today's price
    assert schedule.at["b", "price_now"] >= 15.0
    assert (schedule["price_now"] >= pd.Series({"a": 4.0, "b": 10.0, "c": 2.0})).all()


@pytest.mark.parametrize(
    ("columns", "needle"),
    [
        ({"stock": [-1, 3, 0]}, "stock"),
        ({"cost": [float("nan"), 10.0, 2.0]}, "cost"),
        ({"current_price": [0.0, 19.9, 5.0]}, "current_price"),
        ({"floor": [12.0, None, None], "ceiling": [10.0, None, None]}, "floor"),
        ({"colour": ["red", "blue", "green"]}, "colour"),
    ],
)
def test_bad_sku_files_exit_nonzero_naming_the_field(
    settings: Settings, tmp_path: Path, columns: dict, needle: str
) -> None:
    demand_path, _ = _demand(tmp_path)
    out = tmp_path / "schedule.parquet"
    out.write_bytes(b"the previous schedule")
    result = _optimise(
        settings,
        *("--input", str(_skus(tmp_path, **columns)), "--demand", str(demand_path)),
        *("--horizon", str(HORIZON), "--out", str(out)),
    )
    assert result.exit_code != 0
    assert needle in result.output
    assert out.read_bytes() == b"the previous schedule", "a failed run must not touch the previous output"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("item_id,price,expected_units\n", "no rows"),
        ("item_id,price,expected_units\na,9.9,-1\n", "expected_units"),
        ("item_id,price,expected_units\na,9.9,nan\n", "expected_units"),
        ("item_id,price\na,9.9\n", "expected_units"),
        (b"PAR1\x00\x01garbage", "could not be read"),
    ],
)
def test_bad_demand_files_exit_nonzero(settings: Settings, tmp_path: Path, content: str | bytes, needle: str) -> None:
    path = tmp_path / ("demand.parquet" if isinstance(content, bytes) else "demand.csv")
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    result = _optimise(
        settings, "--input", str(_skus(tmp_path)), "--demand", str(path), "--out", str(tmp_path / "o.parquet")
    )
    assert result.exit_code != 0 and needle in result.output
    assert not (tmp_path / "o.parquet").exists()


def test_horizon_out_of_range_and_no_model_are_clear(settings: Settings, tmp_path: Path) -> None:
    skus = str(_skus(tmp_path))
    for horizon in ("0", "366"):
        result = _optimise(settings, "--input", skus, "--horizon", horizon, "--out", str(tmp_path / "o.parquet"))
        assert result.exit_code == 2 and "horizon" in result.output
    result = _optimise(settings, "--input", skus, "--out", str(tmp_path / "o.parquet"))
    assert result.exit_code == 1 and "siyu train demand" in result.output


def test_train_demand_then_backtest_from_the_command_line(small_world: Settings, tmp_path: Path) -> None:
    import shutil

    from tests.conftest import make_settings

    world = make_settings(tmp_path / "copy")
    shutil.copytree(small_world.data_dir, world.data_dir)
    env = {"SIYU_MLFLOW_TRACKING_URI": world.mlflow_tracking_uri, "SIYU_MLFLOW_ARTIFACT_ROOT": str(tmp_path / "art")}
    trained = runner.invoke(app, ["train", "demand", "--data-dir", str(world.data_dir)], env=env)
    assert trained.exit_code == 0, trained.output
    assert "champion" in trained.output
    result = runner.invoke(
        app,
        [
            *("price", "backtest", "--skus", "20", "--horizon", "7", "--seeds", "3", "--start-day", "14"),
            *("--out", str(tmp_path / "bt"), "--data-dir", str(world.data_dir)),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["skus"] == 20 and "revenue_vs_oracle_learned_demand" in figures
    assert (tmp_path / "bt" / "pricing_paths.png").exists()


def test_backtest_without_a_generated_world_explains_why(settings: Settings) -> None:
    result = runner.invoke(app, ["price", "backtest", "--data-dir", str(settings.data_dir)])
    assert result.exit_code == 1 and "generated world" in result.output
