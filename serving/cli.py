"""`siyu serve`: hand the process over to the BentoML server."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from siyu.cli_support import DataDir, fail, settings_for


def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default SIYU_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default SIYU_PORT, 3000)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve the API with BentoML (replaces this process)."""
    from training.pipeline import has_champion

    settings = settings_for(data_dir)
    if not has_champion(settings):
        raise fail(
            f"no @champion '{settings.conversion_model_name}' model in {settings.mlflow_tracking_uri}:"
            " run `siyu bootstrap` (synthetic world) or `siyu train conversion` first"
        )
    env = {**os.environ, "SIYU_DATA_DIR": str(settings.data_dir)}
    bentoml = Path(sys.executable).with_name("bentoml")
    args = [
        str(bentoml),
        "serve",
        "serving.service:Siyu",
        "--host",
        host or settings.host,
        "--port",
        str(port or settings.port),
    ]
    os.execve(args[0], args, env)
