"""Fitting the decision-path model: epochs, early stopping, a wall-clock budget and resumable checkpoints.

Training is SASRec's: every training user's last L + 1 steps form one sequence, every real position is
a next-item target, AdamW, one pass over the users per epoch, early stopping on validation NDCG@10
(full ranking, seen items excluded). On CPU the quality of a transformer is decided by how many epochs
fit in the budget, so batching is index arithmetic over precomputed windows, losses touch only real
positions, and a budget ends training with the best epoch so far rather than a half-trained one.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from siyu.memory import peak_rss
from siyu.metrics import ranking_metrics, target_ranks
from training.sequence.batches import StepTokens, TrainWindows
from training.sequence.checkpoint import load_checkpoint, save_checkpoint
from training.sequence.data import EvalSet, SequenceData, Split
from training.sequence.evaluation import seen_matrix
from training.sequence.inference import last_hidden, query_tokens
from training.sequence.losses import NextItemLoss, intent_loss
from training.sequence.model import DecisionPathModel, SequenceModelConfig


@dataclass
class EpochRecord:
    """One epoch: mean training loss, validation NDCG@10 and wall-clock seconds (training + validation)."""

    epoch: int
    loss: float
    valid_ndcg10: float
    seconds: float


@dataclass
class TrainResult:
    """The fitted model (best validation epoch) and what it cost to get there."""

    model: DecisionPathModel
    history: list[EpochRecord] = field(default_factory=list)  # every epoch so far, resumed ones included
    train_seconds: float = 0.0  # this call's wall clock, validation included
    sequences_per_second: float = 0.0  # training sequences per second of optimisation (validation excluded)
    best_epoch: int = 0
    best_ndcg10: float = float("nan")  # on the validation questions early stopping used (see `valid_sample`)
    peak_rss_mb: float = 0.0  # the process's resident memory at its highest during the fit
    rss_growth_mb: float = 0.0  # how far above its level when the fit began
    stop_reason: str = "max_epochs"  # "max_epochs" | "patience" | "budget"


@dataclass
class _EarlyStopping:
    """The best validation score so far, the weights that earned it, and epochs since it last improved."""

    best_state: dict[str, torch.Tensor]
    best: float = -np.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, epoch: int, ndcg: float, model: DecisionPathModel) -> None:
        if not ndcg <= self.best:  # NaN (no validation questions) keeps the latest model
            self.best, self.best_epoch, self.bad_epochs = ndcg, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1


def cpu_threads() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def _fit_settings(threads: int) -> Iterator[None]:
    """Thread count and deterministic kernels for the fit only; the process's own settings come back after.

    Deterministic mode would also NaN-fill every new tensor (a debugging aid that cost ~15% of a step).
    """
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    fill_before, threads_before = torch.utils.deterministic.fill_uninitialized_memory, torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.utils.deterministic.fill_uninitialized_memory = fill_before
        torch.set_num_threads(threads_before)


def _epoch_seed(seed: int, epoch: int) -> int:
    """Seeds shuffling and dropout per epoch, so a resumed fit replays exactly what an uninterrupted one does."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def validation_ndcg(model: DecisionPathModel, data: SequenceData, questions: EvalSet, tokens: StepTokens) -> float:
    """NDCG@10 over `questions` (histories read from `data`) by the shared metrics' protocol: full ranking,
    seen items excluded, target never excluded; scored batch by batch so memory stays bounded."""
    asked = questions.cut > 0
    users, cut, target = questions.users[asked], questions.cut[asked], questions.target[asked].astype(np.int64)
    if users.size == 0:
        return float("nan")
    ranks = np.empty(users.size, dtype=np.float64)
    with torch.inference_mode():
        query = torch.from_numpy(query_tokens(data, users, cut))
        for rows, hidden in last_hidden(model, data, users, cut, tokens):
            scores = model.item_logits(model.for_query(hidden, query[rows])).numpy()
            ranks[rows] = target_ranks(scores, target[rows], seen_matrix(data, users[rows], cut[rows]))
    return ranking_metrics(ranks, 10)["ndcg@10"] * float(asked.mean())  # empty histories count as misses


def _validation_questions(valid: EvalSet, sample: int | None, seed: int) -> EvalSet:
    """A fixed random subset of the validation questions (all of them when `sample` is None or larger)."""
    if sample is None or len(valid) <= sample:
        return valid
    keep = np.sort(np.random.default_rng(seed).choice(len(valid), size=sample, replace=False))
    return EvalSet(users=valid.users[keep], cut=valid.cut[keep], target=valid.target[keep])


def _train_epoch(
    model: DecisionPathModel,
    optimiser: torch.optim.Optimizer,
    windows: TrainWindows,
    next_item_loss: NextItemLoss,
    config: SequenceModelConfig,
    use_intent: bool,
    rng: np.random.Generator,
    out_of_time: Callable[[], bool],
    on_batch: Callable[[int], None],
) -> tuple[float, int, bool]:
    """One pass over the training users: (mean loss per scored position, sequences trained, stopped early)."""
    model.train()
    loss_sum, positions, sequences = 0.0, 0, 0
    for batch in windows.batches(config.batch_size, rng):
        hidden = model.encode(batch.item, batch.action, batch.channel, batch.gap)[batch.real]
        target = batch.target[batch.real]
        scored = target > 0  # positions whose next step is a deepening train the intent head only
        queried = model.for_query(hidden[scored], batch.target_gap[batch.real][scored])
        loss = next_item_loss(*model.scoring_pair(queried), target[scored]) if scored.any() else hidden.sum() * 0
        if use_intent:
            loss = loss + config.intent_weight * intent_loss(model.intent_logit(hidden), batch.intent[batch.real])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        loss_sum += loss.item() * hidden.shape[0]
        positions += hidden.shape[0]
        sequences += batch.sequences
        on_batch(batch.sequences)
        if out_of_time():
            return loss_sum / max(positions, 1), sequences, True
    return loss_sum / max(positions, 1), sequences, False


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:,.0f} seq/s  loss {task.fields[loss]:.4f}  valid ndcg@10 {task.fields[ndcg]}"),
        TimeElapsedColumn(),
        disable=not show,
    )


def _checkpoint_state(
    config: SequenceModelConfig,
    model: DecisionPathModel,
    optimiser: torch.optim.Optimizer,
    epoch: int,
    stopping: _EarlyStopping,
    history: list[EpochRecord],
) -> dict[str, Any]:
    return {
        "config": config.model_dump(),
        "n_items": model.n_items,
        "n_channels": model.n_channels,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "best_model": stopping.best_state,
        "best_ndcg10": float(stopping.best),
        "best_epoch": stopping.best_epoch,
        "bad_epochs": stopping.bad_epochs,
        "history": [asdict(r) for r in history],
    }


def train(
    split: Split,
    config: SequenceModelConfig | None = None,
    checkpoint_dir: Path | str | None = None,
    resume: bool = False,
    progress: bool = False,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Fit on `split.train`, early-stop on `split.valid`; checkpoint to `checkpoint_dir` after every epoch.

    `on_epoch(epoch, valid_ndcg10)` runs after each validation (and checkpoint), so a tuner can record the
    curve and stop a hopeless fit early by raising (e.g. optuna.TrialPruned): the exception propagates
    out of train() as is, with the deterministic-kernel setting and the progress display restored.

    With `resume=True` and a checkpoint in `checkpoint_dir`, training continues after the saved epoch with
    the saved optimiser and early-stopping state, and replays the same shuffles and dropout an uninterrupted
    fit would have drawn. `config.budget_seconds` bounds this call's wall clock; at least one batch always runs.
    """
    config = config or SequenceModelConfig()
    started = time.perf_counter()
    data, n_items, n_channels = split.data, split.data.n_items, len(split.data.channel_vocab)
    with _fit_settings(config.threads or cpu_threads()), peak_rss() as memory:
        torch.manual_seed(config.seed)
        model = DecisionPathModel(config, n_items, n_channels, data.item_category)
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        windows = TrainWindows(split.train, config.max_len, config.windows_per_user)
        next_item_loss = NextItemLoss(config, torch.from_numpy(np.bincount(split.train.item, minlength=n_items + 1)))
        use_intent = split.train.has_actions and config.intent_weight > 0
        questions = _validation_questions(split.valid, config.valid_sample, config.seed)
        valid_tokens = StepTokens.of(data)
        result = TrainResult(model=model)
        stopping = _EarlyStopping(best_state=copy.deepcopy(model.state_dict()))
        first_epoch = 1
        saved = load_checkpoint(checkpoint_dir, config, n_items, n_channels) if resume and checkpoint_dir else None
        if saved is not None:
            model.load_state_dict(saved["model"])
            optimiser.load_state_dict(saved["optimiser"])
            stopping = _EarlyStopping(
                saved["best_model"], saved["best_ndcg10"], saved["best_epoch"], saved["bad_epochs"]
            )
            result.history = [EpochRecord(**r) for r in saved["history"]]
            first_epoch = saved["epoch"] + 1

        def out_of_time() -> bool:
            return config.budget_seconds is not None and time.perf_counter() - started > config.budget_seconds

        trained_sequences, optimise_seconds = 0, 0.0
        with _progress(progress) as bar:
            task = bar.add_task("train", total=len(windows), epoch=first_epoch, rate=0.0, loss=float("nan"), ndcg="-")
            for epoch in range(first_epoch, config.max_epochs + 1):
                if stopping.bad_epochs >= config.patience:
                    result.stop_reason = "patience"
                    break
                if trained_sequences and out_of_time():
                    result.stop_reason = "budget"
                    break
                epoch_start = time.perf_counter()
                torch.manual_seed(_epoch_seed(config.seed, epoch))
                # reset() replaces the task's fields, so every field the columns read is passed again.
                bar.reset(task, total=len(windows), **{**bar.tasks[task].fields, "epoch": epoch, "rate": 0.0})

                def advance(sequences: int, since: float = epoch_start) -> None:
                    rate = (bar.tasks[task].completed + sequences) / max(time.perf_counter() - since, 1e-9)
                    bar.update(task, advance=sequences, rate=rate)

                loss, sequences, stopped = _train_epoch(
                    model,
                    optimiser,
                    windows,
                    next_item_loss,
                    config,
                    use_intent,
                    np.random.default_rng(_epoch_seed(config.seed, epoch)),
                    out_of_time,
                    advance,
                )
                trained_sequences += sequences
                optimise_seconds += time.perf_counter() - epoch_start
                ndcg = validation_ndcg(model, data, questions, valid_tokens)
                result.history.append(EpochRecord(epoch, loss, ndcg, time.perf_counter() - epoch_start))
                bar.update(task, loss=loss, ndcg=f"{ndcg:.4f}")
                stopping.update(epoch, ndcg, model)
                if checkpoint_dir is not None:
                    state = _checkpoint_state(config, model, optimiser, epoch, stopping, result.history)
                    save_checkpoint(checkpoint_dir, state)
                if on_epoch is not None:
                    on_epoch(epoch, ndcg)
                if stopped:
                    result.stop_reason = "budget"
                    break
            else:
                if stopping.bad_epochs >= config.patience:
                    result.stop_reason = "patience"

    model.load_state_dict(stopping.best_state)
    model.eval()
    result.best_epoch = stopping.best_epoch
    result.best_ndcg10 = float(stopping.best) if np.isfinite(stopping.best) else float("nan")
    result.train_seconds = time.perf_counter() - started
    result.sequences_per_second = trained_sequences / optimise_seconds if optimise_seconds else 0.0
    result.peak_rss_mb, result.rss_growth_mb = memory.peak_mb, memory.growth_mb
    return result
