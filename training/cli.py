"""`siyu train` and `siyu bootstrap`: train models, register them in MLflow, build a first system."""

from __future__ import annotations

from typing import Annotated

import typer

from siyu.cli_support import DataDir, console, fail, settings_for

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
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    console.print(result.summary())
