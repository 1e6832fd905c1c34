"""What every package's CLI module shares: the console, the --data-dir option and how a command fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from siyu.settings import Settings, get_settings

console = Console(stderr=True)
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data directory (default: SIYU_DATA_DIR or ./data)")]


def settings_for(data_dir: Path | None) -> Settings:
    """Settings from the environment, with --data-dir taking precedence when given."""
    return get_settings(**({"data_dir": data_dir} if data_dir else {}))


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as an error and return the Exit to raise (1: the command failed, 2: bad usage)."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)
