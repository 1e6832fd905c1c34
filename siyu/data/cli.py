"""`siyu data`: generate a synthetic world, import real logs, resolve identities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from siyu.cli_support import DataDir, console, fail, settings_for

app = typer.Typer(help="Generate or import data; resolve identities.", no_args_is_help=True)


@app.command("generate")
def data_generate(
    users: Annotated[int, typer.Option(min=1, help="number of users")] = 1000,
    items: Annotated[int, typer.Option(min=1, help="number of items (SKUs)")] = 200,
    days: Annotated[int, typer.Option(min=1, help="days of history")] = 30,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same world")] = 42,
    overwrite: Annotated[bool, typer.Option(help="replace events already in the data directory")] = False,
    data_dir: DataDir = None,
) -> None:
    """Simulate a synthetic private-domain world with ground truth."""
    from siyu.world.entities import WorldConfig
    from siyu.world.generator import WorldExistsError, generate_world

    try:
        report = generate_world(
            WorldConfig(users=users, items=items, days=days, seed=seed), settings_for(data_dir), overwrite
        )
    except WorldExistsError as exc:
        raise fail(str(exc)) from exc
    console.print(report.summary())


@app.command("import")
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
        raise fail(f"unknown --format {fmt!r} (expected one of {', '.join(FORMATS)})", 2)
    try:
        report = import_file(path, fmt, settings_for(data_dir), skip_bad=skip_bad)  # type: ignore[arg-type]
    except (ImportFormatError, ImportRejected) as exc:
        raise fail(str(exc)) from exc
    console.print(report.summary())


@app.command("identity")
def data_identity(data_dir: DataDir = None) -> None:
    """Resolve member ids, phone hashes, openids and device ids into one user id."""
    import pandas as pd

    from siyu.data.identity import build_identity_map, pairwise_precision_recall

    settings = settings_for(data_dir)
    with console.status("resolving identities"):
        report = build_identity_map(settings)
    console.print(report.summary())
    truth = settings.truth_identity_path
    if truth.exists():
        p, r = pairwise_precision_recall(pd.read_parquet(settings.identity_map_path), pd.read_parquet(truth))
        console.print(f"against the generator's truth: pairwise precision {p:.4f}, recall {r:.4f}")
