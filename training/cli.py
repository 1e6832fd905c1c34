"""The `siyu` command line: one sub-command per pipeline step, each a thin call into the library."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from siyu.settings import Settings, get_settings

app = typer.Typer(help="siyu: recommendation and dynamic pricing for private-domain retail.", no_args_is_help=True)
data_app = typer.Typer(help="Generate or import data; resolve identities.", no_args_is_help=True)
features_app = typer.Typer(help="Build, register and materialise Feast features.", no_args_is_help=True)
train_app = typer.Typer(help="Train models and register them in MLflow.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(train_app, name="train")

console = Console(stderr=True)
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data directory (default: SIYU_DATA_DIR or ./data)")]


def _settings(data_dir: Path | None) -> Settings:
    return get_settings(**({"data_dir": data_dir} if data_dir else {}))


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@data_app.command("generate")
def data_generate(
    users: Annotated[int, typer.Option(min=1, help="number of users")] = 1000,
    items: Annotated[int, typer.Option(min=1, help="number of items (SKUs)")] = 200,
    days: Annotated[int, typer.Option(min=1, help="days of history")] = 30,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same world")] = 42,
    overwrite: Annotated[bool, typer.Option(help="replace events already in the data directory")] = False,
    data_dir: DataDir = None,
) -> None:
    """Simulate a synthetic private-domain world with ground truth."""
    from siyu.data.generator import WorldExistsError, generate_world
    from siyu.data.world import WorldConfig

    try:
        report = generate_world(
            WorldConfig(users=users, items=items, days=days, seed=seed), _settings(data_dir), overwrite
        )
    except WorldExistsError as exc:
        raise _fail(str(exc)) from exc
    console.print(report.summary())


@data_app.command("import")
def data_import(
    path: Annotated[Path, typer.Argument(help="CSV (plain or .gz) or Parquet file")],
    fmt: Annotated[str, typer.Option("--format", help="events | taobao | online-retail")] = "events",
    skip_bad: Annotated[bool, typer.Option(help="import the good rows and report the bad ones")] = False,
    data_dir: DataDir = None,
) -> None:
    """Import real logs; all-or-nothing unless --skip-bad."""
    from siyu.data.importers import ImportFormatError, ImportRejected, import_file
    from siyu.data.importing.formats import FORMATS

    if fmt not in FORMATS:
        raise _fail(f"unknown --format {fmt!r} (expected one of {', '.join(FORMATS)})", 2)
    try:
        report = import_file(path, fmt, _settings(data_dir), skip_bad=skip_bad)  # type: ignore[arg-type]
    except (ImportFormatError, ImportRejected) as exc:
        raise _fail(str(exc)) from exc
    console.print(report.summary())


@data_app.command("identity")
def data_identity(data_dir: DataDir = None) -> None:
    """Resolve member ids, phone hashes, openids and device ids into one user id."""
    import pandas as pd

    from siyu.data.identity import build_identity_map, pairwise_precision_recall

    settings = _settings(data_dir)
    with console.status("resolving identities"):
        report = build_identity_map(settings)
    console.print(report.summary())
    truth = settings.truth_identity_path
    if truth.exists():
        p, r = pairwise_precision_recall(pd.read_parquet(settings.identity_map_path), pd.read_parquet(truth))
        console.print(f"against the generator's truth: pairwise precision {p:.4f}, recall {r:.4f}")


@features_app.command("build")
def features_build(data_dir: DataDir = None) -> None:
    """Resolve identities, compute point-in-time snapshots and apply the Feast repo."""
    from training.pipeline import build_features

    try:
        with console.status("resolving identities, computing snapshots, applying the Feast repo"):
            report = build_features(_settings(data_dir))
        console.print(report.summary())
    except ValueError as exc:
        raise _fail(str(exc)) from exc


@features_app.command("apply")
def features_apply(data_dir: DataDir = None) -> None:
    """Register entities and feature views with the Feast registry."""
    from features import repo

    with console.status("applying the Feast repo"):
        repo.apply(_settings(data_dir))
    console.print("feature repo applied")


@features_app.command("materialize")
def features_materialize(data_dir: DataDir = None) -> None:
    """Load the newest snapshot of every user and item into the online store."""
    from features import repo

    settings = _settings(data_dir)
    if not repo.source_paths(settings)[repo.USER_VIEW].exists():
        raise _fail("no feature snapshots yet: run `siyu features build` first")
    _, end = repo.materialize(settings)
    console.print(
        f"materialised into the {settings.online_store.split(':')[0]} online store up to {end:%Y-%m-%d %H:%M}"
    )


@train_app.command("conversion")
def train_conversion(
    max_rows: Annotated[int, typer.Option(min=1000, help="cap on training impressions (sampled)")] = 400_000,
    data_dir: DataDir = None,
) -> None:
    """Train the LightGBM conversion model, log it to MLflow and register it."""
    from training.conversion import train_and_register

    try:
        result = train_and_register(_settings(data_dir), max_rows=max_rows, console=console)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    console.print(result.summary())


@app.command("bootstrap")
def bootstrap_cmd(data_dir: DataDir = None) -> None:
    """If no @champion model exists: generate a small world, build features, train and register."""
    from training.pipeline import bootstrap

    bootstrap(_settings(data_dir), console=console)


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default SIYU_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default SIYU_PORT, 3000)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve the API with BentoML (replaces this process)."""
    from training.pipeline import has_champion

    settings = _settings(data_dir)
    if not has_champion(settings):
        raise _fail(
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


if __name__ == "__main__":
    app()
