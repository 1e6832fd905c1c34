"""`siyu evaluate sequence`: the decision-path model against every baseline on one dataset, as a table and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli_support import DataDir, console, fail, settings_for

evaluate_app = typer.Typer(help="Evaluate models against baselines on held-out data.", no_args_is_help=True)

DatasetFormat = Annotated[
    str, typer.Option("--format", help="auto | user-item | taobao | online-retail (auto: from the file's contents)")
]


def _table(title: str, rows: dict[str, dict[str, float]], columns: tuple[str, ...]) -> Table:
    table = Table(title=title)
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    for name, row in rows.items():
        table.add_row(
            name, *(f"{row[c]:.4f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns)
        )
    return table


@evaluate_app.command("sequence")
def evaluate_sequence(
    dataset: Annotated[
        Path | None, typer.Option(help="a log file to evaluate on (default: the data directory's event log)")
    ] = None,
    dataset_format: DatasetFormat = "auto",
    budget_minutes: Annotated[float, typer.Option(min=0.1, help="wall-clock training budget of the model")] = 20.0,
    out: Annotated[Path | None, typer.Option(help="write the result as JSON keyed by model")] = None,
    check_order: Annotated[bool, typer.Option(help="also fit on shuffled sequences: order must matter")] = True,
    data_dir: DataDir = None,
) -> None:
    """Leave-last-out full-ranking NDCG@10 / HR@10 / MRR of the decision-path model and every baseline."""
    from training.sequence.comparison import compare
    from training.sequence.data import SequenceDataError, leave_last_out
    from training.sequence.sources import own_events, read_dataset
    from training.sequence.world_truth import oracle_for

    settings = settings_for(data_dir)
    try:
        data = read_dataset(dataset, dataset_format) if dataset else own_events(settings)
        split = leave_last_out(data)
    except (SequenceDataError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    oracle = None if dataset else oracle_for(settings, data)
    console.print(
        f"{data.n_users:,} users, {data.n_items:,} items, {data.n_steps:,} steps; "
        f"{len(split.test):,} test users (leave-last-out){'; oracle from the world truth' if oracle else ''}"
    )
    result = compare(
        split, budget_minutes * 60, oracle=oracle, check_order=check_order, progress=True, announce=console.print
    )
    columns = ("ndcg@10", "hr@10", "mrr", "train_seconds", "infer_ms_per_user")
    console.print(_table("seen items excluded (published protocol)", result.seen_excluded, columns))
    console.print(_table("seen items kept", result.seen_kept, ("ndcg@10", "ndcg@10_repeat", "ndcg@10_new", "mrr")))
    for name, reason in result.skipped.items():
        console.print(f"skipped {name}: {reason}")
    best, _ = result.best_baseline()
    ratios = ", ".join(f"{k} {v:.3f}" for k, v in result.ratios().items())
    console.print(f"best baseline: {best}; ours {ratios}")
    if out:
        out.write_text(json.dumps(result.as_json(), indent=2, default=float))
        console.print(f"wrote {out}")
