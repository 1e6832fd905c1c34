"""Batched, gradient-free reads of a fitted model: the newest position's item scores and purchase intent.

Histories are grouped by length so a batch is trimmed to its longest member, and scores come back in the
caller's row order. Every history here holds at least one step; callers decide what an empty one gets.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from training.sequence.batches import StepTokens, history_batches
from training.sequence.data import SequenceData, gap_tokens
from training.sequence.model import DecisionPathModel

INFERENCE_BATCH = 512


def last_hidden(
    model: DecisionPathModel,
    data: SequenceData,
    users: np.ndarray,
    cut: np.ndarray,
    tokens: StepTokens | None = None,
    batch_size: int = INFERENCE_BATCH,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """(rows into `users`, hidden state at each history's newest step (rows, hidden)) in length-sorted batches.

    The hidden states are inference tensors: consume them under `torch.inference_mode()` as well.
    """
    tokens = StepTokens.of(data) if tokens is None else tokens
    was_training = model.training  # a loaded model is already in eval mode: toggling walks every module
    if was_training:
        model.eval()
    try:
        with torch.inference_mode():
            for rows, index in history_batches(data, users, cut, model.config.max_len, batch_size, tokens):
                yield rows, model.encode(*tokens.gather(index))[:, -1]
    finally:
        if was_training:
            model.train()


def query_tokens(data: SequenceData, users: np.ndarray, cut: np.ndarray, now: float | None = None) -> np.ndarray:
    """Gap token of each request: from the history's newest step to the target's time when the data holds it
    (evaluation: the moment the user made the choice), else to `now` (serving); 0 (unknown) otherwise."""
    users, cut = np.asarray(users, dtype=np.int64), np.asarray(cut, dtype=np.int64)
    start = data.offsets[users]
    has_target = cut < data.lengths[users]
    newest = data.time[np.maximum(start + cut - 1, 0)]
    target = np.where(has_target, data.time[np.minimum(start + cut, max(data.n_steps - 1, 0))], now or 0)
    known = (cut > 0) & (has_target | (now is not None))
    return np.where(known, gap_tokens(np.maximum(target - newest, 0)), 0).astype(np.int64)


def encode_histories(
    model: DecisionPathModel, data: SequenceData, users: np.ndarray, cut: np.ndarray, tokens: StepTokens | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(len(users), hidden) float32 hidden state at each history's newest step, and each one's purchase intent.

    The expensive half of a read, and independent of the request's time: serving keeps it per user
    between rebuilds of the log and finishes each request with `scores_at`.
    """
    hidden = np.empty((len(users), model.config.hidden), dtype=np.float32)
    intent = np.empty(len(users), dtype=np.float32)
    with torch.inference_mode():
        for rows, states in last_hidden(model, data, users, cut, tokens):
            hidden[rows] = states.numpy()
            intent[rows] = torch.sigmoid(model.intent_logit(states)).numpy()
    return hidden, intent


def scores_at(
    model: DecisionPathModel, hidden: np.ndarray, query: np.ndarray, vectors: torch.Tensor | None = None
) -> np.ndarray:
    """(len(hidden), model items + 1) float32 next-item scores of encoded histories asked at gap tokens `query`
    (column 0, padding, is -inf); `vectors`: the model's `item_vectors()` when the caller keeps them."""
    scores = np.empty((len(hidden), model.n_items + 1), dtype=np.float32)
    query = torch.from_numpy(np.asarray(query, dtype=np.int64))
    with torch.inference_mode():
        vectors = model.item_vectors() if vectors is None else vectors
        for start in range(0, len(hidden), INFERENCE_BATCH):  # one batch of scores at a time: no second copy
            rows = slice(start, start + INFERENCE_BATCH)
            conditioned = model.for_query(torch.from_numpy(hidden[rows]), query[rows])
            scores[rows] = model.item_logits(conditioned, vectors).numpy()
    scores[:, 0] = -np.inf
    return scores


def intent_probabilities(
    model: DecisionPathModel, data: SequenceData, users: np.ndarray, cut: np.ndarray, tokens: StepTokens | None = None
) -> np.ndarray:
    """(len(users),) P(a purchase follows later in the session of each history's newest step)."""
    out = np.empty(len(users), dtype=np.float32)
    with torch.inference_mode():
        for rows, hidden in last_hidden(model, data, users, cut, tokens):
            out[rows] = torch.sigmoid(model.intent_logit(hidden)).numpy()
    return out
