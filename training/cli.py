"""`siyu train` and `siyu bootstrap`: train models, register them in MLflow, build a first system."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from siyu.cli_support import DataDir, console, fail, settings_for
from siyu.tracking import RegistryUnavailable

app = typer.Typer(help="Train models and register them in MLflow.", no_args_is_help=True)


@app.command("conversion")
def train_conversion(
    max_rows: Annotated[int, typer.Option(min=1000, help="cap on training impressions (sampled)")] = 400_000,
    data_dir: DataDir = None,
) -> None:
    """Train the LightGBM conversion model, log it to MLflow and register it."""
    from training.conversion import train_and_register

    try:
        result = train_and_register(settings_for(data_dir), max_rows=max_rows, console=console)
    except (ValueError, FileNotFoundError, RegistryUnavailable) as exc:
        raise fail(str(exc)) from exc
    console.print(result.summary())


def evaluate_conversion(
    version: Annotated[str | None, typer.Option(help="model version to evaluate (default: @champion)")] = None,
    out: Annotated[Path, typer.Option(help="directory for evaluation.md/.json and the plots")] = Path(
        "reports/conversion-evaluation"
    ),
    data_dir: DataDir = None,
) -> None:
    """Score a conversion model on today's holdout: AUC, log loss, ECE, Brier and lift, by user history."""
    from rich.table import Table

    from training.conversion_evaluation import evaluate_conversion as run

    try:
        result = run(settings_for(data_dir), out, version)
    except (LookupError, ValueError, FileNotFoundError, RegistryUnavailable) as exc:
        raise fail(str(exc)) from exc
    report = result.report
    table = Table(title=f"conversion v{result.version} on today's holdout")
    columns = ("rows", "auc", "oracle_auc", "logloss", "ece", "brier")
    table.add_column("users")
    for column in columns:
        table.add_column(column, justify="right")
    groups = {"all": report, **report["by_history"]}  # type: ignore[dict-item]
    for name, entry in groups.items():
        table.add_row(name, *(_cell(entry.get(c)) for c in columns))
    for name, entry in report["baselines"].items():  # type: ignore[union-attr]
        table.add_row(f"baseline: {name}", _cell(report["rows"]), *(_cell(entry.get(c)) for c in columns[1:]))
    console.print(table)
    console.print(f"report: {out / 'evaluation.md'} (plots beside it; also logged to MLflow)")


def _cell(value: object) -> str:
    if not isinstance(value, float):
        return "-"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.4f}"


def tune_conversion(
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials")] = 30,
    timeout: Annotated[float | None, typer.Option(min=1, help="stop starting trials after this many seconds")] = None,
    max_rows: Annotated[int, typer.Option(min=1000, help="cap on training impressions (sampled)")] = 400_000,
    data_dir: DataDir = None,
) -> None:
    """Search LightGBM's parameters with Optuna (pruned per round), then train and register the best."""
    from training.conversion_tuning import tune_conversion as run

    def announce(number: int, state: str, value: float | None) -> None:
        shown = f"valid AUC {value:.4f}" if value is not None else "stopped early"
        console.print(f"trial {number}: {state}, {shown}")

    try:
        result = run(settings_for(data_dir), trials, timeout, max_rows, console=console, on_trial=announce)
    except (ValueError, FileNotFoundError, RegistryUnavailable) as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"{result.trials} trials ({result.pruned} pruned) in {result.tune_seconds:.0f}s; best valid AUC"
        f" {result.best_auc:.4f} with {result.best_params}"
    )
    console.print(result.registration.summary())
