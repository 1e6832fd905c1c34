"""`siyu features`: build point-in-time snapshots, register them with Feast, fill the online store."""

from __future__ import annotations

import typer

from siyu.cli_support import DataDir, console, fail, settings_for

app = typer.Typer(help="Build, register and materialise Feast features.", no_args_is_help=True)


@app.command("build")
def features_build(data_dir: DataDir = None) -> None:
    """Resolve identities, compute point-in-time snapshots and apply the Feast repo."""
    from training.pipeline import build_features

    try:
        with console.status("resolving identities, computing snapshots, applying the Feast repo"):
            report = build_features(settings_for(data_dir))
        console.print(report.summary())
    except ValueError as exc:
        raise fail(str(exc)) from exc


@app.command("apply")
def features_apply(data_dir: DataDir = None) -> None:
    """Register entities and feature views with the Feast registry."""
    from features import repo

    with console.status("applying the Feast repo"):
        repo.apply(settings_for(data_dir))
    console.print("feature repo applied")


@app.command("materialize")
def features_materialize(data_dir: DataDir = None) -> None:
    """Load the newest snapshot of every user and item into the online store."""
    from features import repo

    settings = settings_for(data_dir)
    if not repo.source_paths(settings)[repo.USER_VIEW].exists():
        raise fail("no feature snapshots yet: run `siyu features build` first")
    _, end = repo.materialize(settings)
    console.print(
        f"materialised into the {settings.online_store.split(':')[0]} online store up to {end:%Y-%m-%d %H:%M}"
    )
