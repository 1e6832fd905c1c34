"""Candidate retrieval for /recommend, and how often it finds the item a user actually picks next.

The ranker can only rank what retrieval proposes, so the figure that matters is recall: the share of
next-item questions whose answer is among the candidates. Popularity alone (what /recommend scored
before) is compared with the union serving uses: the decision-path model's top items, co-occurrence
with the user's recent steps, and the popular items.
"""

from __future__ import annotations

import numpy as np

from training.sequence.baselines import TIE_BREAK, ItemKNN
from training.sequence.data import SequenceData, Split
from training.sequence.evaluation import Recommender, sample_questions
from training.sequence.signals import item_counts

# Co-occurrence at serve time: the usual winners of the item-kNN grid on our worlds and the public samples;
# only the last 20 steps count, so a request's cost does not grow with a long history.
CO_OCCURRENCE_PARAMS = {"neighbours": 50, "decay": 0.7}
CO_OCCURRENCE_HISTORY = 20
RECALL_BATCH = 256


def co_occurrence(data: SequenceData) -> ItemKNN:
    """Item-to-item cosine neighbours over every step of `data`, as serving uses them."""
    knn = ItemKNN(history_steps=CO_OCCURRENCE_HISTORY)
    knn.fit_all(data, **CO_OCCURRENCE_PARAMS)
    return knn


def candidate_recall(
    split: Split,
    model: Recommender,
    path_candidates: int = 100,
    popular_candidates: int = 500,
    max_users: int | None = 5_000,
    seed: int = 0,
) -> dict[str, float]:
    """Share of test questions whose target is among each source's candidates, and among their union.

    Seen items stay in (serving re-ranks what users bought before, too). Popularity is training counts;
    co-occurrence is learnt from the training steps only, so no test target leaks into it, and proposes only
    items with some similarity to the history (as in serving), not its popularity tie-break.
    """
    questions = sample_questions(split.test, max_users, seed)
    counts = item_counts(split.train).astype(np.float64)
    counts[0] = -np.inf
    popular = np.zeros(split.data.n_items + 1, dtype=bool)
    popular[np.argsort(-counts, kind="stable")[:popular_candidates]] = True
    knn = co_occurrence(split.train)
    hits = {"popular": 0, "decision_path": 0, "co_occurrence": 0, "union": 0}
    for lo in range(0, len(questions), RECALL_BATCH):
        users, cut = questions.users[lo : lo + RECALL_BATCH], questions.cut[lo : lo + RECALL_BATCH]
        target = questions.target[lo : lo + RECALL_BATCH]
        in_path = _in_top(model.score(split.data, users, cut), target, path_candidates)
        similar = knn.score(split.data, users, cut)
        in_similar = _in_top(similar, target, path_candidates) & (similar[np.arange(target.size), target] > TIE_BREAK)
        in_popular = popular[target]
        hits["popular"] += int(in_popular.sum())
        hits["decision_path"] += int(in_path.sum())
        hits["co_occurrence"] += int(in_similar.sum())
        hits["union"] += int((in_popular | in_path | in_similar).sum())
    n = max(len(questions), 1)
    return {f"recall_{name}": count / n for name, count in hits.items()} | {"questions": float(len(questions))}


def _in_top(scores: np.ndarray, target: np.ndarray, n: int) -> np.ndarray:
    """Whether each row's target is among its n best scores (ties counted against it)."""
    rows = np.arange(target.size)
    own = scores[rows, target]
    return (scores > own[:, None]).sum(axis=1) < n
