"""A log-linear blend of fitted recommenders, its weights chosen on the validation questions.

The comparison asks how much the decision-path model adds to what the simple baselines already know.
Mixing its scores with theirs and tuning the mix on `split.valid` answers that as a repeatable figure
(the bound a product would reach by serving both), where weights picked on the test questions would
flatter it. Each part's scores become log-probabilities over the items first, since the parts speak on
different scales: the model gives logits (`scores_are_logits`), the baselines counts, probabilities or
similarities (negative ones, as EASE's, count as no support).

The search is greedy, one part at a time: start from the part that scores best alone on validation,
then add each other part, best first, at the weight (or none) that helps most. It can therefore never
do worse on validation than its best part, and it costs a handful of validation passes per part
instead of a grid's product. Every part's scores for the validation questions are computed once and
kept for the search only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax

from training.sequence.data import SequenceData, Split
from training.sequence.evaluation import Recommender, evaluate

# Relative weights tried for each part after the first (whose weight is 1); "not at all" is always an option.
WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0)
# Probability floor of a non-logit part, relative to a uniform guess: an item it gives no support at all
# is this much less likely than uniform, finite so a blend can still rank it by its other parts.
FLOOR_VS_UNIFORM = 1e-3


class ScoreBlend:
    """Σ weightᵢ · log Pᵢ(next item) over already fitted `parts`, tuned on validation by `fit`.

    `exclude_seen` is the protocol the weights are tuned for, as for the baselines: a blend serving
    "new to you" lists and one serving lists with the user's own items in them want different mixes.
    `weights` maps part name to its chosen weight (parts left out have none); `tuning` records every
    tried mix's validation NDCG@10.
    """

    def __init__(
        self,
        parts: Sequence[Recommender],
        name: str = "blend",
        exclude_seen: bool = True,
        tune_users: int | None = 2_000,
        seed: int = 0,
    ) -> None:
        names = [part.name for part in parts]
        if not parts or len(set(names)) != len(names):
            raise ValueError(f"a blend needs at least one part and distinct part names, got {names}")
        self.parts = list(parts)
        self.name = name
        self.exclude_seen = exclude_seen
        self.tune_users = tune_users
        self.seed = seed
        self.weights: dict[str, float] = {}
        self.tuning: list[dict[str, object]] = []
        self._cache: dict[bytes, list[np.ndarray]] | None = None

    @property
    def params(self) -> dict[str, float]:
        return dict(self.weights)

    def fit(self, split: Split) -> None:
        """Choose the weights on `split.valid`; the parts must already be fitted on `split.train`."""
        self.tuning = []
        self._cache = {}
        try:
            alone = {part.name: self._valid_ndcg(split, {part.name: 1.0}) for part in self.parts}
            # No validation question to judge by (NaN) ranks a part last; the first part then stands alone.
            order = sorted(alone, key=lambda name: -np.nan_to_num(alone[name], nan=-np.inf))
            chosen, best = {order[0]: 1.0}, alone[order[0]]
            for name in order[1:]:
                base = chosen
                for weight in WEIGHTS:
                    trial = base | {name: weight}
                    if (ndcg := self._valid_ndcg(split, trial)) > best:
                        chosen, best = trial, ndcg
            self.weights = chosen
        finally:
            self._cache = None

    def _valid_ndcg(self, split: Split, weights: dict[str, float]) -> float:
        trial = _TrialMix(self, weights)
        ndcg = evaluate(
            trial, split, "valid", exclude_seen=self.exclude_seen, max_users=self.tune_users, seed=self.seed
        )["ndcg@10"]
        self.tuning.append({**weights, "valid_ndcg@10": ndcg})
        return ndcg

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        """(len(users), n_items + 1) float32: the weighted sum of the parts' log-probabilities; column 0 is -inf."""
        if not self.weights:
            raise RuntimeError(f"{self.name} has no weights yet: call fit(split) first")
        return self.mixed(data, users, cut, self.weights)

    def mixed(self, data: SequenceData, users: np.ndarray, cut: np.ndarray, weights: dict[str, float]) -> np.ndarray:
        """`score` under the given `weights` (part name -> weight) rather than the chosen ones."""
        logs = self._part_logs(data, users, cut)
        out = np.zeros((len(users), data.n_items + 1), dtype=np.float32)
        for part, log_p in zip(self.parts, logs, strict=True):
            if weight := weights.get(part.name):
                out += np.float32(weight) * log_p
        out[:, 0] = -np.inf
        return out

    def _part_logs(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> list[np.ndarray]:
        """Every part's log-probabilities for these questions, from the search's cache when it is running."""
        key = b"".join((np.asarray(users).tobytes(), b"|", np.asarray(cut).tobytes()))
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        logs = [log_probabilities(part, part.score(data, users, cut)) for part in self.parts]
        if self._cache is not None:
            self._cache[key] = logs
        return logs


@dataclass(frozen=True)
class _TrialMix:
    """One mix the search tries, in the shape the evaluation harness ranks (a name and `score`)."""

    blend: ScoreBlend
    weights: dict[str, float]

    @property
    def name(self) -> str:
        return self.blend.name

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        return self.blend.mixed(data, users, cut, self.weights)


def log_probabilities(part: Recommender, scores: np.ndarray) -> np.ndarray:
    """A part's scores as float32 log P(next item) per row, column 0 (padding) left out of the distribution."""
    items = np.asarray(scores[:, 1:], dtype=np.float64)
    out = np.full(scores.shape, -np.inf, dtype=np.float32)
    if getattr(part, "scores_are_logits", False):
        out[:, 1:] = log_softmax(items, axis=1)
        return out
    support = np.clip(np.nan_to_num(items, nan=0.0, neginf=0.0, posinf=0.0), 0.0, None)
    total = support.sum(axis=1, keepdims=True)
    n_items = items.shape[1]
    probs = np.divide(support, total, out=np.full_like(support, 1.0 / n_items), where=total > 0)
    out[:, 1:] = np.log((probs + FLOOR_VS_UNIFORM / n_items) / (1.0 + FLOOR_VS_UNIFORM))
    return out
