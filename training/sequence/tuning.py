"""Hyper-parameter search for the decision-path model: Optuna TPE with median pruning, every trial in MLflow.

The objective is early stopping's validation NDCG@10. Each trial gets its own wall-clock budget, so a study's
cost is predictable (trials x budget at most) and a slow architecture is judged on what it reaches in the same
time as a fast one, which is the trade-off that matters on CPU. Trials report NDCG@10 after every epoch, so the
median pruner stops a trial already behind the others at the same epoch instead of spending its budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import mlflow
import optuna

from siyu.settings import Settings
from siyu.tracking import use_tracking
from training.sequence.data import Split
from training.sequence.model import SequenceModelConfig
from training.sequence.recommender import SASRecRecommender
from training.sequence.registry import EXPERIMENT, SequenceRegistration, log_and_register


@dataclass
class TrialOutcome:
    """What one trial did: its state ("complete" | "pruned"), objective, params and cost."""

    number: int
    state: str
    value: float | None
    params: dict[str, object]
    epochs: int
    seconds: float

    def line(self) -> str:
        value = f"{self.value:.4f}" if self.value is not None else "-"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items())
        cost = f"{self.epochs} epochs, {self.seconds:.1f}s"
        return f"trial {self.number}: {self.state}, valid NDCG@10 {value}, {cost} ({params})"


@dataclass
class TuningResult:
    """The study, its best trial's params and value, and that trial's fitted model (reused, not retrained)."""

    study: optuna.Study
    best_params: dict[str, object]
    best_value: float
    best_config: SequenceModelConfig
    recommender: SASRecRecommender
    parent_run_id: str
    trials: list[TrialOutcome] = field(default_factory=list)
    registration: SequenceRegistration | None = None


@dataclass
class _Best:
    """The best completed trial so far: its value, config and fitted model."""

    value: float
    config: SequenceModelConfig
    recommender: SASRecRecommender


def suggest_config(trial: optuna.Trial, base: SequenceModelConfig, budget_seconds: float) -> SequenceModelConfig:
    """A config from the search space; heads are drawn among those dividing the drawn width."""
    hidden = trial.suggest_categorical("hidden", [32, 64, 128])
    heads = trial.suggest_categorical("heads", [1, 2, 4])
    if hidden % heads:  # cannot happen with these choices, but keeps the space safe if they change
        raise optuna.TrialPruned(f"heads={heads} does not divide hidden={hidden}")
    return base.model_copy(
        update={
            "hidden": hidden,
            "heads": heads,
            "layers": trial.suggest_categorical("layers", [1, 2, 3]),
            "dropout": trial.suggest_float("dropout", 0.1, 0.5),
            "max_len": trial.suggest_categorical("max_len", [50, 100, 200]),
            "lr": trial.suggest_float("lr", 3e-4, 3e-3, log=True),
            "loss": trial.suggest_categorical("loss", ["softmax", "sampled"]),
            "query_gap": trial.suggest_categorical("query_gap", [False, True]),
            "session_bias": trial.suggest_categorical("session_bias", [False, True]),
            "item_bias": trial.suggest_categorical("item_bias", [False, True]),
            "windows_per_user": trial.suggest_categorical("windows_per_user", [1, 4, None]),
            "budget_seconds": budget_seconds,
        }
    )


def tune(
    settings: Settings,
    split: Split,
    fingerprint: str,
    n_trials: int = 20,
    timeout: float | None = None,
    trial_budget_seconds: float = 180.0,
    base_config: SequenceModelConfig | None = None,
    seed: int | None = None,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    register: bool = True,
) -> TuningResult:
    """Run the study in a parent MLflow run with one nested run per trial; register the best trial's model.

    The parent run logs the best params, the best value and the data fingerprint and, with `register`, holds
    the registered pyfunc and its test metrics, so one run says what was searched and what was shipped. The
    best trial's fitted model is registered as is (same seed, same budget: a refit would only cost time).
    Raises ValueError when no trial completed (all pruned, or the timeout hit before the first finished);
    nothing is registered then.
    """
    base = base_config or SequenceModelConfig()
    seed = settings.seed if seed is None else seed
    use_tracking(settings, EXPERIMENT)
    with mlflow.start_run(run_name="sequence-tuning") as parent:
        mlflow.log_params(
            {
                "data_version": fingerprint,
                "split": split.kind,
                "n_trials": n_trials,
                "timeout": str(timeout),
                "trial_budget_seconds": trial_budget_seconds,
                "sampler_seed": seed,
            }
        )
        study, best, outcomes = _study(split, n_trials, timeout, trial_budget_seconds, base, seed, on_trial)
        mlflow.log_params({f"best_{k}": str(v) for k, v in study.best_params.items()})
        mlflow.log_metric("best_trial_valid_ndcg10", study.best_value)
        registration = log_and_register(settings, best.recommender, split) if register else None
    return TuningResult(
        study=study,
        best_params=study.best_params,
        best_value=study.best_value,
        best_config=best.config,
        recommender=best.recommender,
        parent_run_id=parent.info.run_id,
        trials=outcomes,
        registration=registration,
    )


def _study(
    split: Split,
    n_trials: int,
    timeout: float | None,
    trial_budget_seconds: float,
    base: SequenceModelConfig,
    seed: int,
    on_trial: Callable[[TrialOutcome], None] | None,
) -> tuple[optuna.Study, _Best, list[TrialOutcome]]:
    """Optimise inside the active MLflow run (each trial a nested run); keep the best trial's fitted model."""
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    )
    best: list[_Best] = []
    outcomes: list[TrialOutcome] = []

    def objective(trial: optuna.Trial) -> float:
        config = suggest_config(trial, base, trial_budget_seconds)
        epochs: list[int] = []

        def report(epoch: int, ndcg: float) -> None:
            epochs.append(epoch)
            mlflow.log_metric("valid_ndcg10", ndcg, step=epoch)
            trial.report(ndcg, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (valid NDCG@10 {ndcg:.4f})")

        recommender = SASRecRecommender(config, on_epoch=report)
        mlflow.start_run(run_name=f"trial-{trial.number}", nested=True)
        status = "FAILED"
        try:
            mlflow.log_params({k: str(v) for k, v in config.model_dump().items()})
            mlflow.set_tag("optuna_trial", str(trial.number))
            try:
                recommender.fit(split)
            except optuna.TrialPruned:
                mlflow.set_tag("optuna_state", "pruned")
                status = "KILLED"
                raise
            finally:
                trial.set_user_attr("epochs", len(epochs))
            result = recommender.result
            mlflow.set_tag("optuna_state", "complete")
            mlflow.log_metrics(
                {
                    "train_seconds": result.train_seconds,
                    "sequences_per_second": result.sequences_per_second,
                    "best_valid_ndcg10": result.best_ndcg10,
                    "best_epoch": float(result.best_epoch),
                }
            )
            status = "FINISHED"
        finally:
            mlflow.end_run(status)  # ends this trial's run only; the parent stays active
        value = result.best_ndcg10
        if value != value:  # NaN: no validation questions, so trials cannot be compared
            raise ValueError("validation NDCG@10 is NaN: the split has no validation questions")
        if not best or value > best[0].value:
            best[:] = [_Best(value, config, recommender)]
        return value

    def record(_: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        seconds = frozen.duration.total_seconds() if frozen.duration else 0.0
        epochs = int(frozen.user_attrs.get("epochs", 0))
        outcome = TrialOutcome(frozen.number, frozen.state.name.lower(), frozen.value, frozen.params, epochs, seconds)
        outcomes.append(outcome)
        if on_trial is not None:
            on_trial(outcome)

    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[record])
    if not best:
        raise ValueError(f"no trial completed out of {len(study.trials)}: raise --trial-minutes or --timeout")
    return study, best[0], outcomes
