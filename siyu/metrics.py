"""One metrics module for every model, benchmark and test, so a number means the same everywhere."""

from __future__ import annotations

import numpy as np
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


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q))
