"""`siyu price` (optimise, backtest) and `siyu train demand`: the pricing team's and ML engineers' commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pricing import MAX_HORIZON
from siyu.cli_support import DataDir, console, fail, settings_for
from siyu.settings import Settings

if TYPE_CHECKING:  # pandas and the model are imported by the commands that need them: `siyu --help` stays fast
    import pandas as pd

    from pricing.demand.model import DemandModel

app = typer.Typer(help="Optimise price schedules and backtest pricing policies.", no_args_is_help=True)


def bootstrap_demand(settings: Settings) -> None:
    """Train and register a first demand model when none is registered (`siyu bootstrap`, `make serve`)."""
    from pricing.demand.registry import train_and_register
    from siyu.tracking import CHAMPION, alias_version

    if alias_version(settings, settings.demand_model_name, CHAMPION) is not None:
        console.print(f"[green]@{CHAMPION}[/] '{settings.demand_model_name}' already registered")
        return
    console.print(train_and_register(settings, console=console).summary())


def train_demand(data_dir: DataDir = None) -> None:
    """Fit the demand model on the brand's sales, log it to MLflow and register it."""
    from pricing.demand.registry import train_and_register

    try:
        result = train_and_register(settings_for(data_dir), console=console)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    console.print(result.summary())


def _read_table(path: Path, what: str) -> pd.DataFrame:
    """A CSV or Parquet file as a frame, or a clear error naming the file."""
    import pandas as pd

    if not path.exists():
        raise fail(f"{what} file {path} does not exist", 2)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".gz", ".txt"):
            return pd.read_csv(path)
    except Exception as exc:  # pyarrow and pandas raise many types for a corrupt file
        raise fail(f"{what} file {path} could not be read ({type(exc).__name__}: {exc})", 2) from exc
    raise fail(f"{what} file {path}: expected .csv or .parquet", 2)


@app.command("optimise")
def optimise(
    input_path: Annotated[
        Path, typer.Option("--input", help="SKUs: item_id, stock, cost, current_price, salvage_value")
    ],
    out: Annotated[Path, typer.Option(help="schedule file to write (.parquet or .csv), one row per SKU")],
    horizon: Annotated[int, typer.Option(help="periods (days) to plan", min=1, max=MAX_HORIZON)] = 28,
    demand_path: Annotated[
        Path | None, typer.Option("--demand", help="your own forecast: item_id, price, expected_units[, period]")
    ] = None,
    objective: Annotated[str, typer.Option(help="revenue | margin")] = "revenue",
    rules: Annotated[str, typer.Option(help="default (settings' rules + per-SKU columns) | none")] = "default",
    policy_out: Annotated[
        Path | None, typer.Option(help="also write the full policy (price by period x stock)")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Optimise price schedules for a list of SKUs; prints one JSON line with the totals."""
    from rich.progress import Progress

    from pricing.planning import PlanningError, default_rules, plan, policy_frame, schedule_frame

    if objective not in ("revenue", "margin"):
        raise fail(f"--objective must be revenue or margin, got {objective!r}", 2)
    if rules not in ("default", "none"):
        raise fail(f"--rules must be default or none, got {rules!r}", 2)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise fail(f"--out {out}: expected a .parquet or .csv file name", 2)
    settings = settings_for(data_dir)
    skus = _read_table(input_path, "SKU")
    if rules == "none":
        from pricing.planning import RULE_COLUMNS

        ignored = [c for c in RULE_COLUMNS if c in skus.columns]
        if ignored:
            console.print(f"--rules none: ignoring the rule column(s) {ignored} of {input_path}")
            skus = skus.drop(columns=ignored)
    demand = _read_table(demand_path, "demand") if demand_path else None
    model, version = (None, None) if demand is not None else _champion_demand(settings)
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"optimising {len(skus):,} SKUs x {horizon} periods", total=3 * horizon)
            result = plan(
                skus,
                horizon,
                settings,
                objective=objective,  # type: ignore[arg-type]
                rules=default_rules(settings) if rules == "default" else None,
                demand=demand,
                model=model,
                model_version=version,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except PlanningError as exc:
        raise fail(str(exc), 2) from exc
    schedule = schedule_frame(result)
    _write_atomic(schedule, out)
    if policy_out is not None:
        _write_atomic(policy_frame(result), policy_out)
    s = result.solution
    print(
        json.dumps(
            {
                "skus": int(s.item_ids.size),
                "periods": horizon,
                "solve_seconds": round(result.solve_seconds, 3),
                "expected_value": float(s.value.sum()),
                "expected_revenue": float(s.revenue.sum()),
                "expected_margin": float(s.margin.sum()),
                "expected_units": float(s.units.sum()),
                "hold_revenue": float(s.hold_revenue.sum()),
                "fluid_bound": float(result.bound.sum()),
                "gap_to_bound": float(1 - s.value.sum() / max(result.bound.sum(), 1e-12)),
                "demand_source": result.demand_source,
                "out": str(out),
            }
        )
    )


def _champion_demand(settings: Settings) -> tuple[DemandModel, str]:
    """The registered @champion demand model, or exit naming what to run."""
    from pricing.demand.registry import load_champion

    try:
        return load_champion(settings)
    except (LookupError, ValueError, FileNotFoundError) as exc:
        raise fail(f"{exc} (or pass your own forecast with --demand)") from exc


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write next to `path` and rename, so a failed run never leaves a half-written or clobbered file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@app.command("backtest")
def backtest(
    skus: Annotated[int | None, typer.Option(help="SKUs to sample (default: every SKU with stock)", min=1)] = None,
    horizon: Annotated[int, typer.Option(help="periods (days) to play forward", min=1, max=MAX_HORIZON)] = 14,
    seeds: Annotated[int, typer.Option(help="demand draws per policy (common random numbers)", min=1)] = 20,
    start_day: Annotated[
        int | None, typer.Option(help="world day to start on (default: the last `horizon` days)", min=1)
    ] = None,
    out: Annotated[Path | None, typer.Option(help="directory for backtest.json and the PNG plots")] = None,
    data_dir: DataDir = None,
) -> None:
    """Play current price, best static price, the oracle DP, the learned-demand DP and a markdown rule on the truth."""
    from pricing.backtest.report import run_world_backtest

    settings = settings_for(data_dir)
    if not settings.truth_demand_path.exists():
        raise fail(
            f"no demand truth at {settings.truth_demand_path}: the backtest needs a generated world"
            " (siyu data generate); imported data has no true demand to play against"
        )
    try:
        with console.status("fitting demand, solving, playing policies"):
            summary = run_world_backtest(settings, skus, horizon, seeds, start_day, out)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    console.print(summary.table())
    print(json.dumps(summary.figures))
