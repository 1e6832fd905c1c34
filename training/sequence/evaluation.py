"""One harness for every next-item model: full ranking over all items, in batches, with SASRec's protocol.

Every model (ours, each baseline, the synthetic world's oracle) implements `Recommender` and is scored by
`evaluate`, so their numbers are comparable: all items ranked (never sampled negatives), by default the
user's already-seen items removed as in SASRec/BERT4Rec/gSASRec, ties counted as in
`siyu.metrics.target_ranks`. Real retail logs repeat items, which those papers' datasets do not, so
`evaluate` states how repeated targets are treated (see there). Scores are produced and ranked one batch
of questions at a time, so 20k users x 5k items never sit in memory at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from siyu.metrics import ranking_metrics, target_ranks
from training.sequence.data import EvalSet, SequenceData, Split, history_positions

Which = Literal["valid", "test"]


@runtime_checkable
class Recommender(Protocol):
    """A next-item scorer. `fit` sees `split.train` only (validation may tune it); `score` sees histories.

    `score(data, users, cut)` returns float32 (len(users), n_items + 1): row j scores every item token as
    the next step after user users[j]'s steps [offsets[u], offsets[u] + cut[j]). Column 0 (padding) is
    ignored. A row of all NaN means "no answer for this user" (the oracle's users without ground truth);
    such rows are left out of the metrics and counted. A model that cannot run on a dataset (EASE on a
    huge catalogue) sets `skipped` to the reason in `fit`.
    """

    name: str

    def fit(self, split: Split) -> None: ...

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray: ...


def seen_matrix(data: SequenceData, users: np.ndarray, cut: np.ndarray) -> sp.csr_matrix:
    """(len(users), n_items + 1) with a non-zero for every item in each history: what the user has seen."""
    positions, indptr = history_positions(data, users, cut)
    values = np.ones(positions.size, dtype=np.float32)
    return sp.csr_matrix((values, data.item[positions], indptr), shape=(len(users), data.n_items + 1))


def eval_set(split: Split, which: Which) -> EvalSet:
    if which not in ("valid", "test"):
        raise ValueError(f"which must be 'valid' or 'test', not {which!r}")
    return split.valid if which == "valid" else split.test


def subset(questions: EvalSet, keep: np.ndarray) -> EvalSet:
    return EvalSet(users=questions.users[keep], cut=questions.cut[keep], target=questions.target[keep])


# Questions a registered model is scored on (registry metrics, the champion contest): a fixed sample, the same
# for every version on the same split, so versions compare like with like. Ranking every question of a big
# store is what made registering a model on a 200k-user log take longer than training it.
GATE_QUESTIONS = 20_000


def sample_questions(questions: EvalSet, max_users: int | None, seed: int = 0) -> EvalSet:
    """A fixed random subset of the questions (all of them when `max_users` is None or not smaller)."""
    if max_users is None or len(questions) <= max_users:
        return questions
    return subset(questions, np.sort(np.random.default_rng(seed).choice(len(questions), size=max_users, replace=False)))


def repeat_targets(data: SequenceData, questions: EvalSet) -> np.ndarray:
    """(n,) bool: the question's target item already appears in its history (a repeat, not a new item)."""
    positions, indptr = history_positions(data, questions.users, questions.cut)
    rows = np.repeat(np.arange(len(questions)), np.diff(indptr))
    hit = data.item[positions] == questions.target[rows]
    return np.bincount(rows[hit], minlength=len(questions)) > 0


def evaluate(
    recommender: Recommender,
    split: Split,
    which: Which = "test",
    exclude_seen: bool = True,
    batch: int = 1024,
    k: int = 10,
    max_users: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """NDCG@k, HR@k and MRR of a fitted recommender on `split.valid` or `split.test`, ranked over all items.

    With `exclude_seen` (the published protocol) items in the user's history cannot be recommended and
    only questions whose target is a new item are ranked. Ranking a repeated target among unseen items
    only (SASRec's rule, which assumes logs without repeats) would hand every repeat to any model that
    scores seen items high: "buy it again" would look like a strong next-new-item model. `repeat_share`
    says how many questions that leaves out. Without `exclude_seen` every question counts, and the result
    also splits the metrics by repeat (`..._repeat`) and new (`..._new`) targets.
    `infer_ms_per_user` is the wall time of `score` per question; `users` how many questions were ranked,
    `unscored_users` how many rows the recommender left all-NaN. `max_users` ranks a fixed random subset
    of the eligible questions (for tuning).
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    questions = eval_set(split, which)
    repeat_all = repeat_targets(split.data, questions)
    if exclude_seen:
        questions = subset(questions, ~repeat_all)
    questions = sample_questions(questions, max_users, seed)
    repeat_of = repeat_all if not exclude_seen else np.zeros(len(questions), dtype=bool)
    if not exclude_seen and max_users is not None:
        repeat_of = repeat_targets(split.data, questions)
    ranks: list[np.ndarray] = []
    repeats: list[np.ndarray] = []
    seconds = 0.0
    unscored = 0
    for start in range(0, len(questions), batch):
        rows = slice(start, start + batch)
        users, cut, target, repeat = questions.users[rows], questions.cut[rows], questions.target[rows], repeat_of[rows]
        started = time.perf_counter()
        scores = recommender.score(split.data, users, cut)
        seconds += time.perf_counter() - started
        expected = (users.size, split.data.n_items + 1)
        if scores.shape != expected:
            raise ValueError(f"{recommender.name}.score returned shape {scores.shape}, expected {expected}")
        answered = _answered_rows(scores[:, 1:], recommender.name)
        unscored += int((~answered).sum())
        exclude = seen_matrix(split.data, users, cut) if exclude_seen else None
        if not answered.all():
            scores, target, repeat = scores[answered], target[answered], repeat[answered]
            exclude = exclude[answered] if exclude is not None else None
        ranks.append(target_ranks(scores, target, exclude))
        repeats.append(repeat)
    rank = np.concatenate(ranks) if ranks else np.empty(0)
    repeat = np.concatenate(repeats) if repeats else np.empty(0, dtype=bool)
    result: dict[str, float] = {
        **ranking_metrics(rank, k),
        "users": int(rank.size),
        "unscored_users": unscored,
        "repeat_share": float(repeat_all.mean()) if repeat_all.size else float("nan"),
        "infer_ms_per_user": 1000.0 * seconds / max(len(questions), 1),
    }
    if not exclude_seen:
        for part, mask in (("repeat", repeat), ("new", ~repeat)):
            result.update({f"{name}_{part}": value for name, value in ranking_metrics(rank[mask], k).items()})
    return result


def benchmark(
    recommender: Recommender, split: Split, exclude_seen: bool = True, batch: int = 1024
) -> dict[str, object]:
    """Fit (timed) and evaluate on the test questions: one row of the `sequence` report."""
    started = time.perf_counter()
    recommender.fit(split)
    train_seconds = time.perf_counter() - started
    skipped = getattr(recommender, "skipped", None)
    if skipped:
        return {"skipped": skipped, "train_seconds": train_seconds}
    result = evaluate(recommender, split, "test", exclude_seen=exclude_seen, batch=batch)
    return {**result, "train_seconds": train_seconds, "params": dict(getattr(recommender, "params", {}))}


def _answered_rows(scores: np.ndarray, name: str) -> np.ndarray:
    """Rows with at least one score; a row mixing scores and NaN is a model bug, not "no answer"."""
    missing = np.isnan(scores)
    unanswered = missing.all(axis=1)
    if np.any(missing.any(axis=1) & ~unanswered):
        raise ValueError(f"{name}.score returned NaN for some items of a row (all-NaN rows mean 'no answer')")
    return ~unanswered


# The oracle's source: either a callable (user ids, item ids) -> (users, items) probabilities, NaN rows for
# users without ground truth (e.g. functools.partial(oracle_next_item_scores, truth_dir)), or a dense
# (data.n_users, data.n_items) matrix aligned with data.user_ids x data.item_vocab.
OracleSource = Callable[[np.ndarray, np.ndarray], np.ndarray] | np.ndarray


class OracleRecommender:
    """The synthetic world's true next-item probabilities, scored by the same harness as every model.

    It is the ceiling a learned model can approach on generated data. Users the truth does not cover
    come back as NaN rows, which `evaluate` leaves out and counts (`unscored_users`). The truth answers
    one question per user (the world's: each user's last observable step), so it belongs on the test
    questions of a leave-last-out split. A callable source is asked once per batch of questions.
    """

    def __init__(self, source: OracleSource, name: str = "oracle") -> None:
        self.source = source
        self.name = name

    def fit(self, split: Split) -> None:
        """Nothing to learn: the truth is given."""

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        if callable(self.source):
            probs = np.asarray(self.source(data.user_ids[users], data.item_vocab), dtype=np.float32)
        else:
            probs = np.asarray(self.source, dtype=np.float32)[users]
        if probs.shape != (users.size, data.n_items):
            raise ValueError(f"oracle gave shape {probs.shape}, expected {(users.size, data.n_items)} (users, items)")
        covered = ~np.isnan(probs).all(axis=1)
        out = np.full((users.size, data.n_items + 1), np.nan, dtype=np.float32)
        # A covered user's item the truth does not know (NaN) is an item they cannot choose: probability 0.
        out[covered, 1:] = np.nan_to_num(probs[covered], nan=0.0)
        out[covered, 0] = -np.inf
        return out
