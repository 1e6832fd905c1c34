"""`siyu serve` (hand the process over to the BentoML server) and `siyu recommend batch` (reach lists)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from siyu.cli_support import DataDir, console, fail, settings_for

recommend_app = typer.Typer(help="Recommendations in batch: reach lists for campaigns.", no_args_is_help=True)


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


@recommend_app.command("batch")
def batch(
    out: Annotated[Path, typer.Option(help="where to write the list (.parquet or .csv)")],
    tier: Annotated[
        Literal["core", "potential", "silent", "all"], typer.Option(help="value tier whose users get a list")
    ] = "all",
    k: Annotated[int, typer.Option(min=1, max=100, help="items per user")] = 10,
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many users (default: all)")] = None,
    data_dir: DataDir = None,
) -> None:
    """A reach list: every user of a tier with their top-k items, the hour they are usually active and their
    channel (user_id, tier, rank, item_id, score, reason, best_hour, channel), for a WeCom/SMS campaign tool."""
    from rich.progress import Progress

    from serving.recommend.ranker import ModelNotFoundError
    from serving.recommend.reach import ReachListError, build_reach_list, users_in_tier

    if out.suffix not in (".parquet", ".csv"):
        raise fail(f"--out must end in .parquet or .csv, got {out.name!r}", code=2)
    settings = settings_for(data_dir)
    chosen = None if tier == "all" else tier
    try:
        total = len(users_in_tier(settings, chosen))
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"reach list ({tier})", total=min(total, limit or total))
            result = build_reach_list(settings, chosen, k, limit=limit, on_user=lambda: bar.advance(task))
    except (ReachListError, ModelNotFoundError) as exc:
        raise fail(str(exc)) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        result.rows.to_csv(out, index=False)
    else:
        result.rows.to_parquet(out, index=False)
    console.print(
        f"{result.users:,} users, {len(result.rows):,} rows -> {out} "
        f"({result.users_per_second:,.1f} users/s over {result.seconds:.1f} s)"
    )


def bento(data_dir: DataDir = None) -> None:
    """Build the service into a Bento (`bentoml serve TAG` runs it) pinned to today's @champion versions."""
    from serving.bento import BentoBuildError, build_bento

    settings = settings_for(data_dir)
    try:
        with console.status("bentoml build"):
            built = build_bento(settings)
    except BentoBuildError as exc:
        raise fail(str(exc)) from exc
    pins = ", ".join(f"{name} v{version}" for name, version in built.pinned.items())
    console.print(f"built Bento {built.tag} serving {pins}; run it with `bentoml serve {built.tag}`")
    print(built.tag)
