"""Repeat or explore: one calibrated decision per question between the user's own items and new ones.

A next-item model trained with one softmax over all items decides only implicitly how much of its mass
goes to items the user already has. On a repurchase-heavy log that matters as much as the order within
each group: on UCI Online Retail, with seen items kept, the model ranked new targets far below where
transitions put them. Following RepeatNet (Ren et al., AAAI 2019), the gate makes the decision explicit
and learns it from the validation step: P(the next item is a repeat | question) by a logistic regression
on the base model's own repeat mass, whether the question opens a new session, and the history's length,
breadth and repeat rate. Then

    score(i) = P(repeat) · P_base(i | seen)        for items in the history,
               (1 − P(repeat)) · P_base(i | new)   for every other item.

Within the seen items and within the new ones the base model's order stands; only how the two
interleave changes. So with seen items excluded the gated model ranks exactly as its base does, and the
gate is judged on the seen-kept view.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from training.sequence.data import SequenceData, Split, opens_session
from training.sequence.evaluation import Recommender, repeat_targets, sample_questions, seen_matrix

FEATURES = ("base_repeat_logit", "opens_session", "log_history", "log_distinct", "history_repeat_rate")
MASS_FLOOR = 1e-6  # keeps the logit of a base repeat mass of exactly 0 or 1 finite


class RepeatExploreGate:
    """Wraps a fitted base recommender whose scores are logits; `fit` learns P(repeat) on `split.valid`.

    `repeat_rate` is the validation share of repeat targets, `coefficients` the regression's weights
    on the standardised `FEATURES`. Fewer than two classes among the validation targets leaves the gate
    at the observed rate (smoothed away from 0 and 1).
    """

    scores_are_logits = True  # it returns log-probabilities

    def __init__(self, base: Recommender, name: str = "gated", tune_users: int | None = 20_000, seed: int = 0) -> None:
        self.base = base
        self.name = name
        self.tune_users = tune_users
        self.seed = seed
        self.repeat_rate = float("nan")
        self.coefficients: dict[str, float] = {}
        self._classifier = None

    def fit(self, split: Split) -> None:
        """Learn the gate from the validation questions; the base must already be fitted on `split.train`."""
        questions = sample_questions(split.valid, self.tune_users, self.seed)
        labels = repeat_targets(split.data, questions)
        self.repeat_rate = float((labels.sum() + 1.0) / (labels.size + 2.0))
        self._classifier = None
        self.coefficients = {}
        if labels.min(initial=0) == labels.max(initial=0):
            return
        features = self._features(split.data, questions.users, questions.cut)[0]
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
        classifier.fit(features, labels)
        self._classifier = classifier
        weights = classifier[-1].coef_[0]
        self.coefficients = {name: round(float(w), 4) for name, w in zip(FEATURES, weights, strict=True)}

    @property
    def params(self) -> dict[str, float]:
        return {"repeat_rate": self.repeat_rate, **self.coefficients}

    def repeat_probability(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        """(len(users),) P(the next item is one the user already has)."""
        return self._gate(self._features(data, users, cut)[0])

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        """(len(users), n_items + 1) float32 log-probabilities after the gate; column 0 is -inf."""
        features, probs, seen, mass = self._features(data, users, cut)
        repeat = self._gate(features)[:, None]
        mass = mass[:, None]
        gated = np.where(seen, probs * (repeat / mass), probs * ((1 - repeat) / (1 - mass)))
        out = np.full(gated.shape, -np.inf, dtype=np.float32)
        with np.errstate(divide="ignore"):
            out[:, 1:] = np.log(gated[:, 1:])
        return out

    def _gate(self, features: np.ndarray) -> np.ndarray:
        if self._classifier is not None:
            return self._classifier.predict_proba(features)[:, 1]
        if np.isnan(self.repeat_rate):
            raise RuntimeError(f"{self.name} has no gate yet: call fit(split) first")
        return np.full(len(features), self.repeat_rate)

    def _features(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray, ...]:
        """The gate's inputs, the base's item probabilities, the (n, n_items + 1) bool mask of seen items and the
        base's mass on them (computed once: a feature, and the gate's denominator)."""
        users, cut = np.asarray(users, dtype=np.int64), np.asarray(cut, dtype=np.int64)
        logits = np.asarray(self.base.score(data, users, cut), dtype=np.float32)
        probs = np.zeros_like(logits)
        probs[:, 1:] = np.exp(log_softmax(logits[:, 1:], axis=1))
        del logits
        seen = seen_matrix(data, users, cut).toarray() > 0
        seen[:, 0] = False
        mass = _repeat_mass(probs, seen)
        distinct = seen.sum(axis=1)
        # The asked step's gap is known in evaluation (and is the request's time at serving); without one,
        # a question counts as opening a new session.
        asked = cut < data.lengths[users]
        target = np.where(asked, data.offsets[users] + cut, 0)
        opens = np.where(asked, opens_session(data.gap[target]), True).astype(np.float64)
        features = np.column_stack(
            [np.log(mass / (1 - mass)), opens, np.log1p(cut), np.log1p(distinct), 1.0 - distinct / np.maximum(cut, 1)]
        )
        return features, probs, seen, mass


def _repeat_mass(probs: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(n,) the base's probability that the next item is a seen one, kept off exactly 0 and 1."""
    return np.clip((probs * seen).sum(axis=1), MASS_FLOOR, 1 - MASS_FLOOR)
