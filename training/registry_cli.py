"""`siyu promote` (the champion gate) and `siyu models list` (what the registry holds)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli_support import DataDir, console, fail, settings_for

models_app = typer.Typer(help="What the model registry holds.", no_args_is_help=True)


class Contest(StrEnum):
    conversion = "conversion"
    sequence = "sequence"


def promote(
    model: Annotated[Contest, typer.Argument(help="which model's challenger to judge")],
    version: Annotated[str | None, typer.Option(help="the version to judge (default: @challenger)")] = None,
    accept_feature_change: Annotated[
        bool, typer.Option(help="compare a conversion challenger whose feature list differs from the champion's")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Make the challenger @champion only if it beats the champion on the same held-out rows (exit 1 if not)."""
    from siyu.tracking import RegistryUnavailable
    from training.promotion import PromotionError, contenders, crown, judge

    settings = settings_for(data_dir)
    try:
        if model is Contest.conversion:
            from training.conversion_contest import conversion_rule, conversion_scorer

            name, rule = settings.conversion_model_name, conversion_rule(settings)
            challenger, champion = contenders(settings, name, version)
            with console.status("scoring both versions on today's holdout"):
                score = conversion_scorer(settings, challenger, champion, accept_feature_change)
                verdict = judge(name, challenger, champion, score, rule)
        else:
            from training.sequence.contest import sequence_rule, sequence_scorer

            name, rule = settings.sequence_model_name, sequence_rule(settings)
            challenger, champion = contenders(settings, name, version)
            with console.status("ranking today's validation questions with both versions"):
                verdict = judge(name, challenger, champion, sequence_scorer(settings, challenger, champion), rule)
    except (PromotionError, RegistryUnavailable) as exc:
        raise fail(str(exc)) from exc
    table = Table(title=f"{name}: challenger v{verdict.challenger} vs champion v{verdict.champion or '-'}")
    for column in ("metric", "challenger", "champion"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for metric, (mine, theirs) in verdict.metrics.items():
        table.add_row(metric, f"{mine:.4f}", "-" if theirs is None else f"{theirs:.4f}")
    console.print(table)
    if not verdict.promoted:
        raise fail(f"not promoted: {verdict.reason}; @champion stays v{verdict.champion}")
    crown(settings, verdict)
    console.print(f"[green]promoted[/] v{verdict.challenger} to @champion ({verdict.reason})")


@models_app.command("list")
def list_models(data_dir: DataDir = None) -> None:
    """Every registered model's versions, aliases and headline metrics."""
    from siyu.tracking import RegistryUnavailable, redacted
    from training.model_listing import model_rows

    settings = settings_for(data_dir)
    try:
        rows = model_rows(settings)
    except RegistryUnavailable as exc:
        raise fail(str(exc)) from exc
    except Exception as exc:  # reachable but unreadable (wrong schema, permissions)
        raise fail(f"cannot read the model registry at {redacted(settings.mlflow_tracking_uri)}: {exc}") from exc
    if not rows:
        console.print("no registered models yet: run `siyu bootstrap` or `siyu train ...`")
        return
    table = Table(title=f"models in {redacted(settings.mlflow_tracking_uri)}")
    for column in ("model", "version", "aliases", "created", "metrics"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.model, row.version, ", ".join(row.aliases), row.created, row.metrics)
    console.print(table)
