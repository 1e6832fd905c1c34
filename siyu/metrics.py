"""One metrics module for every model, benchmark and test, so a number means the same everywhere."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import log_loss, roc_auc_score


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC; NaN when only one class is present (undefined, not 0.5)."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def logloss(labels: np.ndarray, probs: np.ndarray) -> float:
    return float(log_loss(labels, np.clip(probs, 1e-7, 1 - 1e-7), labels=[0, 1]))


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |observed rate - mean prediction| over equal-width probability bins."""
    labels, probs = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
    which = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        mask = which == b
        total += mask.sum() * abs(labels[mask].mean() - probs[mask].mean())
    return float(total / max(len(labels), 1))


def ndcg_at_k(ranked: list[list[str]], relevant: list[set[str]], k: int = 10) -> float:
    """Mean NDCG@k with binary relevance over full rankings (one list per user)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    scores = []
    for items, rel in zip(ranked, relevant, strict=True):
        if not rel:
            continue
        gains = np.array([item in rel for item in items[:k]], dtype=float)
        ideal = discounts[: min(len(rel), k)].sum()
        scores.append(float((gains * discounts[: len(gains)]).sum() / ideal))
    return float(np.mean(scores)) if scores else float("nan")


def hit_rate_at_k(ranked: list[list[str]], relevant: list[set[str]], k: int = 10) -> float:
    hits = [bool(set(items[:k]) & rel) for items, rel in zip(ranked, relevant, strict=True) if rel]
    return float(np.mean(hits)) if hits else float("nan")


def target_ranks(scores: np.ndarray, targets: np.ndarray, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """1-based rank of each row's target among all items: rank = 1 + #(scores above it) + ½·#(other items tied with it).

    Full ranking, never sampled negatives. `scores` is (n, V) over item tokens; column 0 is the padding
    token and never competes. `exclude` (n, V), any non-zero cell, removes that item from the row's
    competition (the user's already-seen items), but a row's target is never removed. Half of the ties
    count against the target: the expected rank under a random tie-break, so a model that scores every
    item equal ranks each target in the middle ((m + 1) / 2 among m competing items), never first, and a
    model cannot gain by scoring coarsely. NaN scores count as the lowest score. Ranks may end in .5.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    n, width = scores.shape
    if targets.shape != (n,):
        raise ValueError(f"targets has shape {targets.shape}, expected ({n},) to match scores {scores.shape}")
    if n and (targets.min() < 1 or targets.max() >= width):
        raise ValueError(f"targets must be item tokens in 1..{width - 1} (column 0 is padding)")
    rows = np.arange(n)
    clean = scores
    if np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any():
        clean = np.where(np.isnan(scores), -np.inf, scores)
    target_score = clean[rows, targets]
    above = clean[:, 1:] > target_score[:, None]
    tied = clean[:, 1:] == target_score[:, None]
    greater = above.sum(axis=1).astype(np.float64)
    ties = tied.sum(axis=1).astype(np.float64) - 1.0  # the target ties with itself
    if exclude is not None:
        if exclude.shape != (n, width):
            raise ValueError(f"exclude has shape {exclude.shape}, expected {(n, width)} to match scores")
        exclude = sp.csr_matrix(exclude, copy=True)
        exclude.sum_duplicates()
        exclude.eliminate_zeros()
        cell_row = np.repeat(rows, np.diff(exclude.indptr))
        cell_col = exclude.indices.astype(np.int64)
        competing = (cell_col != 0) & (cell_col != targets[cell_row])
        cell_row, cell_col = cell_row[competing], cell_col[competing]
        cell_score = clean[cell_row, cell_col]
        greater -= np.bincount(cell_row, weights=cell_score > target_score[cell_row], minlength=n)
        ties -= np.bincount(cell_row, weights=cell_score == target_score[cell_row], minlength=n)
    return 1.0 + greater + 0.5 * ties


def ranking_metrics(ranks: np.ndarray, k: int = 10) -> dict[str, float]:
    """Mean NDCG@k, HR@k and MRR of one-target-per-row ranks from `target_ranks` (NaN when there are none).

    With one relevant item the ideal DCG is 1, so NDCG@k = 1/log2(rank + 1) when rank <= k, else 0.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        return {f"ndcg@{k}": float("nan"), f"hr@{k}": float("nan"), "mrr": float("nan")}
    inside = ranks <= k
    return {
        f"ndcg@{k}": float(np.where(inside, 1.0 / np.log2(ranks + 1.0), 0.0).mean()),
        f"hr@{k}": float(inside.mean()),
        "mrr": float((1.0 / ranks).mean()),
    }


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q))
