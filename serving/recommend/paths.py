"""Each user's decision path at serve time, and the items it points to next.

Built from the stored event log (the same steps `siyu train sequence` learns from) once per refresh
tick, so an event that reaches the store changes the user's next recommendation without a restart.
Two retrieval sources read the path: the @champion decision-path model (next items and purchase
intent) and item-to-item co-occurrence over the whole log (cosine item-kNN), which also covers
items the model has never seen. Everything per request is one user's row: no log scan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from serving.recommend.index_lookup import position
from siyu.settings import Settings
from training.sequence.baselines import TIE_BREAK, ItemKNN
from training.sequence.data import SequenceData
from training.sequence.recommender import EncodedPaths, SASRecRecommender
from training.sequence.retrieval import CO_OCCURRENCE_HISTORY, RECALL_BATCH, co_occurrence
from training.sequence.sources import from_events

KEPT = 100  # co-occurring items kept per user at each rebuild


@dataclass
class PathSuggestions:
    """What one user's path suggests: item ids best first per source, and the model's purchase intent."""

    next_items: list[str] = field(default_factory=list)  # decision-path model
    co_occurring: list[str] = field(default_factory=list)  # item-kNN over the user's recent steps
    intent: float | None = None  # P(the user's latest session ends in a purchase); None without a model
    steps: int = 0  # how many stored steps the user has
    model_version: str | None = None  # the decision-path model version that read the path, when one did


class DecisionPaths:
    """Every user's stored steps, the co-occurrence index over them and, given a model, their model view."""

    def __init__(
        self,
        data: SequenceData,
        model: SASRecRecommender | None = None,
        model_version: str | None = None,
        kept: int = KEPT,
        previous: DecisionPaths | None = None,
    ) -> None:
        """`kept`: how many co-occurring items are kept per user (a larger `n` is read live); `previous`: the
        paths this build replaces, whose encodings are reused for every path that has not changed since."""
        self.data = data
        self.model_version = model_version
        self.users = pd.Index(data.user_ids)
        self.item_ids = np.asarray([str(v) for v in data.item_vocab], dtype=object)
        self.co_occurrence = co_occurrence(data)
        everyone = np.arange(data.n_users)
        # Each user's co-occurring items are fixed until the next rebuild: found here for everyone, in batches.
        self.co_occurring = _top_tokens(self.co_occurrence, data, everyone, kept)
        self.model = model
        self.reencoded = 0  # paths encoded by this build (the others kept their previous encoding)
        if model is not None:
            # Re-tokenised once here, so each request's scoring takes the model's shared-vocabulary fast path,
            # and every path encoded once: a request adds only its time (the gap token) and the item scores.
            self.model_data, _, _ = model.in_model_vocab(data, everyone, data.lengths)
            reusable = previous if previous is not None and previous.model is model else None
            self.encoded, self.reencoded = _encoded(model, self.model_data, self.users, reusable)
            self.model_item_ids = np.asarray([str(v) for v in model.item_vocab], dtype=object)

    @classmethod
    def from_store(
        cls, settings: Settings, model: SASRecRecommender | None = None, model_version: str | None = None
    ) -> DecisionPaths:
        """From the event log under settings.data_dir (raises SequenceDataError when it holds no steps)."""
        return cls(from_events(settings), model, model_version)

    def suggest(self, user_id: str, n: int) -> PathSuggestions:
        """Up to n items from each source for `user_id`; empty for a user with no stored steps."""
        row = position(self.users, user_id)
        steps = self.data.length_of(row) if row >= 0 else 0
        if steps == 0:
            return PathSuggestions()
        if n > self.co_occurring.shape[1]:
            model_path = self.model_data.one_user(row, self.model.config.max_len) if self.model is not None else None
            return self._read(self.data.one_user(row, CO_OCCURRENCE_HISTORY), model_path, n, steps)
        tokens = self.co_occurring[row, :n]
        suggestions = PathSuggestions(co_occurring=self.item_ids[tokens[tokens > 0] - 1].tolist(), steps=steps)
        if self.model is not None and self.encoded.has_history[row]:
            rows, lengths = np.array([row]), np.array([self.model_data.length_of(row)])
            scores, intent = self.model.read_encoded(
                self.encoded.rows(rows), self.model_data, rows, lengths, now=time.time()
            )
            suggestions.next_items = _best(scores[0], self.model_item_ids, n)
            suggestions.intent = float(intent[0])
            suggestions.model_version = self.model_version
        return suggestions

    def suggest_for(self, path: SequenceData, n: int) -> PathSuggestions:
        """The same for a one-user path built outside the index: a user with events newer than the index.

        The path is re-tokenised into the index's and the model's vocabularies (items either has never
        seen drop out), which costs a few hundred steps' work, not a rebuild.
        """
        if path.n_steps == 0:
            return PathSuggestions()
        only = np.zeros(1, dtype=np.int64)
        recent, _, _ = path.in_vocab(self.data.item_vocab, self.data.channel_vocab, only, path.lengths)
        model_path = None
        if self.model is not None:
            model_path = self.model.in_model_vocab(path, only, path.lengths)[0].one_user(0, self.model.config.max_len)
        return self._read(recent.one_user(0, CO_OCCURRENCE_HISTORY), model_path, n, path.n_steps)

    def _read(self, recent: SequenceData, model_path: SequenceData | None, n: int, steps: int) -> PathSuggestions:
        only = np.zeros(1, dtype=np.int64)
        similar = self.co_occurrence.score(recent, only, recent.lengths)[0]
        similar[0] = -np.inf
        suggestions = PathSuggestions(co_occurring=_best(similar, self.item_ids, n, floor=TIE_BREAK), steps=steps)
        if self.model is not None and model_path is not None and model_path.n_steps > 0:
            scores, intent = self.model.read(model_path, only, model_path.lengths, now=time.time())
            suggestions.next_items = _best(scores[0], self.model_item_ids, n)
            suggestions.intent = float(intent[0])
            suggestions.model_version = self.model_version
        return suggestions


def _encoded(
    model: SASRecRecommender, data: SequenceData, users: pd.Index, previous: DecisionPaths | None
) -> tuple[EncodedPaths, int]:
    """Every user's encoded path, and how many were encoded now: a path with as many steps ending at the same
    time as in `previous` (the log only grows) keeps its encoding, so a rebuild costs the users who acted."""
    everyone = np.arange(data.n_users)
    if previous is None or previous.data.n_users == 0:
        return model.encode(data, everyone, data.lengths), data.n_users
    before = previous.users.get_indexer(users)
    known = before >= 0
    old = previous.model_data
    same = np.zeros(data.n_users, dtype=bool)
    same[known] = (old.lengths[before[known]] == data.lengths[known]) & (
        _newest_time(old)[before[known]] == _newest_time(data)[known]
    )
    encoded = previous.encoded.rows(np.where(same, before, 0))
    changed = np.flatnonzero(~same)
    if changed.size:
        fresh = model.encode(data, changed, data.lengths[changed])
        encoded.hidden[changed], encoded.intent[changed] = fresh.hidden, fresh.intent
        encoded.has_history[changed] = fresh.has_history
    return encoded, int(changed.size)


def _newest_time(data: SequenceData) -> np.ndarray:
    """(users,) time of each user's newest step (-1 without steps)."""
    lengths = data.lengths
    return np.where(lengths > 0, data.time[np.maximum(data.offsets[1:] - 1, 0)] if data.n_steps else -1, -1)


def _top_tokens(knn: ItemKNN, data: SequenceData, users: np.ndarray, n: int) -> np.ndarray:
    """(len(users), n) int64: each user's n best co-occurring item tokens over the newest steps, best first;
    0 where fewer items score above the tie-break floor."""
    out = np.zeros((users.size, n), dtype=np.int64)
    for start in range(0, users.size, RECALL_BATCH):
        batch = users[start : start + RECALL_BATCH]
        scores = knn.score(data, batch, data.lengths[batch])
        scores[:, 0] = -np.inf
        for i, row in enumerate(scores):
            best = _best_tokens(row, n, TIE_BREAK)
            out[start + i, : best.size] = best
    return out


def _best_tokens(scores: np.ndarray, n: int, floor: float = -np.inf) -> np.ndarray:
    """Tokens of the n highest scores above `floor`, best first (column 0 is padding)."""
    n = min(n, scores.size - 1)
    top = np.argpartition(-scores[1:], n - 1)[:n] + 1 if n > 0 else np.empty(0, dtype=np.int64)
    top = top[np.argsort(-scores[top], kind="stable")]
    return top[scores[top] > floor]


def _best(scores: np.ndarray, item_ids: np.ndarray, n: int, floor: float = -np.inf) -> list[str]:
    """Ids of the n highest scores above `floor`, best first (token t is item_ids[t - 1]; column 0 is padding)."""
    return [str(item_ids[t - 1]) for t in _best_tokens(scores, n, floor)]
