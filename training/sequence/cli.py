"""`siyu evaluate|tune|train sequence`: judge the decision-path model, search its settings, register it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from siyu.cli_support import DataDir, console, fail, settings_for

if TYPE_CHECKING:
    from siyu.settings import Settings
    from training.sequence.data import Split
    from training.sequence.registry import SequenceRegistration

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
    from training.sequence.world_truth import oracle_for

    settings = settings_for(data_dir)
    split, _ = _split_and_fingerprint(settings, dataset, dataset_format)
    oracle = None if dataset else oracle_for(settings, split.data)
    if oracle is not None:
        console.print("oracle: the world's true next-item probabilities")
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
    for blend, weights in result.blend_weights.items():
        console.print(f"weights of {blend}: " + ", ".join(f"{k} {v:g}" for k, v in weights.items()))
    if result.gate:
        console.print("repeat-or-explore gate: " + ", ".join(f"{k} {v:.3g}" for k, v in result.gate.items()))
    if result.intent:
        console.print(
            f"purchase intent AUC {result.intent['intent_auc']:.4f} (last action alone"
            f" {result.intent['last_action_auc']:.4f}; {result.intent['positive_share']:.1%} positive)"
        )
    if out:
        out.write_text(json.dumps(result.as_json(), indent=2, default=float))
        console.print(f"wrote {out}")


tune_app = typer.Typer(help="Search hyper-parameters and register the best model.", no_args_is_help=True)

Dataset = Annotated[Path | None, typer.Option(help="a log file to train on (default: the data directory's event log)")]


def _split_and_fingerprint(settings: Settings, dataset: Path | None, dataset_format: str) -> tuple[Split, str]:
    """Leave-last-out split of the chosen log and its fingerprint, or a clean exit 1 naming what is wrong."""
    from training.sequence.data import SequenceDataError, leave_last_out
    from training.sequence.registry import read_sequences

    try:
        data, fingerprint = read_sequences(settings, dataset, dataset_format)
        split = leave_last_out(data)
    except (SequenceDataError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"{data.n_users:,} users, {data.n_items:,} items, {data.n_steps:,} steps; "
        f"{len(split.valid):,} validation users (leave-last-out); data version {fingerprint}"
    )
    return split, fingerprint


def _print_registration(settings: Settings, registration: SequenceRegistration) -> None:
    console.print(registration.summary())
    console.print(
        f"registered {settings.sequence_model_name} version {registration.version}: @{', @'.join(registration.aliases)}"
    )


@tune_app.command("sequence")
def tune_sequence(
    trials: Annotated[int, typer.Option(min=1, help="most trials to run")] = 20,
    timeout: Annotated[
        float | None, typer.Option(min=1, help="seconds for the whole study (default: no limit)")
    ] = None,
    trial_minutes: Annotated[float, typer.Option(min=0.01, help="wall-clock training budget of each trial")] = 3.0,
    dataset: Dataset = None,
    dataset_format: DatasetFormat = "auto",
    data_dir: DataDir = None,
) -> None:
    """Optuna search (TPE, median pruning) on validation NDCG@10; registers the best trial's model in MLflow."""
    import optuna

    from training.sequence.tuning import tune

    settings = settings_for(data_dir)
    split, fingerprint = _split_and_fingerprint(settings, dataset, dataset_format)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console.print(
        f"tuning: up to {trials} trials of {trial_minutes:g} min each" + (f", {timeout:g}s in all" if timeout else "")
    )
    try:
        result = tune(
            settings,
            split,
            fingerprint,
            n_trials=trials,
            timeout=timeout,
            trial_budget_seconds=trial_minutes * 60,
            on_trial=lambda outcome: console.print(outcome.line()),
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_params.items())
    console.print(f"best valid NDCG@10 {result.best_value:.4f}: {params}")
    registration = result.registration
    _print_registration(settings, registration)


def train_sequence(
    budget_minutes: Annotated[float, typer.Option(min=0.01, help="wall-clock training budget")] = 20.0,
    dataset: Dataset = None,
    dataset_format: DatasetFormat = "auto",
    data_dir: DataDir = None,
) -> None:
    """Train the decision-path model's default config, log it to MLflow and register it."""
    from training.sequence.model import SequenceModelConfig
    from training.sequence.registry import train_and_register

    settings = settings_for(data_dir)
    split, fingerprint = _split_and_fingerprint(settings, dataset, dataset_format)
    config = SequenceModelConfig(budget_seconds=budget_minutes * 60)
    registration = train_and_register(settings, split, fingerprint, config, progress=True)
    _print_registration(settings, registration)


# What `siyu bootstrap` gives the decision-path model on a fresh machine: on the bootstrap world (3,000 users,
# 400 items) it is most of the way to converged by then on two cores.
BOOTSTRAP_BUDGET_SECONDS = 90.0


def bootstrap_sequence(settings: Settings, budget_seconds: float = BOOTSTRAP_BUDGET_SECONDS) -> None:
    """Train and register a first decision-path model when none is registered (`siyu bootstrap`, `make serve`).

    Serving works without one (co-occurrence and popularity still propose candidates), so data that cannot
    become sequences is reported and skipped rather than failing the bootstrap.
    """
    from siyu.tracking import CHAMPION, alias_version
    from training.sequence.data import SequenceDataError, leave_last_out
    from training.sequence.model import SequenceModelConfig
    from training.sequence.registry import read_sequences, train_and_register

    if alias_version(settings, settings.sequence_model_name, CHAMPION) is not None:
        console.print(f"[green]@{CHAMPION}[/] '{settings.sequence_model_name}' already registered")
        return
    try:
        data, fingerprint = read_sequences(settings)
        split = leave_last_out(data)
    except SequenceDataError as exc:
        console.print(f"[yellow]no decision-path model trained:[/] {exc}")
        return
    config = SequenceModelConfig(budget_seconds=budget_seconds)
    _print_registration(settings, train_and_register(settings, split, fingerprint, config, progress=True))
