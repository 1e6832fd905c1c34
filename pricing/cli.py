"""`siyu price` (optimise, backtest) and `siyu train demand`: the pricing team's and ML engineers' commands."""

from __future__ import annotations

import typer

from siyu.cli_support import DataDir, console, fail, settings_for

app = typer.Typer(help="Optimise price schedules and backtest pricing policies.", no_args_is_help=True)


def train_demand(data_dir: DataDir = None) -> None:
    """Fit the demand model on the brand's sales, log it to MLflow and register it."""
    from pricing.demand import train_and_register

    try:
        result = train_and_register(settings_for(data_dir), console=console)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    console.print(result.summary())
