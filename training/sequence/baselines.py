"""The strongest simple next-item models: what the decision-path model has to beat before it earns a place.

On real logs, popularity, "buy it again", transitions, item-kNN and EASE are hard to beat, and an
untuned baseline flatters whatever is compared with it. So each baseline tunes its few parameters that
matter (recency decay, window, neighbours, λ) on `split.valid`, under the same protocol (seen items
excluded or not) as the evaluation it will face, and keeps the grid point with the best NDCG@10.
Everything is counts and sparse products; no loop runs per user, item or step.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from training.sequence.data import SequenceData, Split
from training.sequence.evaluation import evaluate
from training.sequence.signals import (
    category_membership,
    history_weights,
    item_counts,
    popularity_key,
    row_normalised,
    top_entries,
    user_item_matrix,
)

# Weight of the popularity fallback under a model's own (row-normalised, max 1) scores: it orders the items
# the model has no opinion on, and ties, without overruling any real difference in the model's scores.
TIE_BREAK = 1e-4
Grid = dict[str, tuple[Any, ...]]  # parameter -> values to try, cheapest or most standard first


class GridTuned:
    """Learn counts from `split.train`, then keep the grid point with the best validation NDCG@10.

    `tune_exclude_seen` must match the evaluation's `exclude_seen`: with seen items excluded, parameters
    that only reorder the user's own items (`personal`) cannot matter and are not tuned. Validation
    ranks at most `tune_users` questions (a fixed sample), which keeps tuning cheap on big logs.
    `params` holds the chosen point and `tuning` every point's validation NDCG@10.
    """

    name: ClassVar[str] = "grid-tuned"
    default_grid: ClassVar[Grid] = {}
    personal: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        tune_exclude_seen: bool = True,
        tune_users: int | None = 5_000,
        grid: Grid | None = None,
        seed: int = 0,
    ) -> None:
        self.tune_exclude_seen = tune_exclude_seen
        self.tune_users = tune_users
        self.seed = seed
        self.grid: Grid = dict(self.default_grid if grid is None else grid)
        self.params: dict[str, Any] = {}
        self.tuning: list[dict[str, Any]] = []
        self.skipped: str | None = None

    def fit(self, split: Split) -> None:
        self.skipped = None
        self.tuning = []
        self._learn(split.train)
        if self.skipped:
            return
        candidates = self._candidates()
        best: tuple[float, dict[str, Any]] | None = None
        for params in candidates:
            self._use(params)
            if len(candidates) == 1:
                return
            metrics = evaluate(
                self, split, "valid", exclude_seen=self.tune_exclude_seen, max_users=self.tune_users, seed=self.seed
            )
            ndcg = metrics["ndcg@10"]
            self.tuning.append({**params, "valid_ndcg@10": ndcg})
            if best is None or ndcg > best[0]:
                best = (ndcg, params)
                self._keep_best()
        assert best is not None
        self._use(best[1])

    def fit_all(self, data: SequenceData, **params: Any) -> None:
        """Learn from every step of `data` at fixed parameters, no validation: serving's use of the whole log."""
        self.skipped = None
        self._learn(data)
        self._use(params)

    def _candidates(self) -> list[dict[str, Any]]:
        """Every grid point; parameters that only touch seen items keep their first value when those are excluded."""
        grid = {
            key: values[:1] if self.tune_exclude_seen and key in self.personal else values
            for key, values in self.grid.items()
        }
        return [dict(zip(grid, point, strict=True)) for point in itertools.product(*grid.values())]

    def _learn(self, train: SequenceData) -> None:
        raise NotImplementedError

    def _use(self, params: dict[str, Any]) -> None:
        self.params = dict(params)

    def _keep_best(self) -> None:
        """The current point is the best so far: a subclass with costly state may keep it to avoid a recompute."""

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _rows_of(key: np.ndarray, n: int) -> np.ndarray:
    """`key` (items,) repeated for n questions, as the float32 score block the harness expects."""
    return np.tile(key.astype(np.float32), (n, 1))


class Popularity(GridTuned):
    """Most-stepped items in training, optionally only over the last `window_days` (ties: all-time counts)."""

    name = "popularity"
    default_grid: ClassVar[Grid] = {"window_days": (None, 30.0, 7.0, 1.0)}

    def _learn(self, train: SequenceData) -> None:
        self._train = train
        self._total = item_counts(train)

    def _use(self, params: dict[str, Any]) -> None:
        super()._use(params)
        recent = item_counts(self._train, params["window_days"])
        self._key = popularity_key(recent, self._total)

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        return _rows_of(self._key, len(users))


class PersonalThenGlobal(Popularity):
    """The user's own recency-weighted item frequencies, then (recent) popularity for everything else.

    `personal_weight` inf puts every item the user has stepped on above every other item; a finite weight
    blends the user's normalised frequency (max 1) with the popularity rank (in [0, 1)), so a very popular
    new item can outrank an item the user touched once long ago.
    """

    name = "personal_then_global"
    default_grid: ClassVar[Grid] = {
        "window_days": (None, 30.0, 7.0, 1.0),
        "personal_weight": (math.inf, 1.0, 0.3),
        "decay": (1.0, 0.8),
    }
    personal: ClassVar[tuple[str, ...]] = ("personal_weight", "decay")

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        out = _rows_of(self._key, len(users))
        own = sp.coo_matrix(row_normalised(history_weights(data, users, cut, decay=self.params["decay"])))
        mine = own.data > 0
        rows, cols, share = own.row[mine], own.col[mine], own.data[mine]
        weight = self.params["personal_weight"]
        if math.isinf(weight):
            out[rows, cols] = 1.0 + share + TIE_BREAK * self._key[cols]
        else:
            out[rows, cols] += weight * share
        return out


class PersonalTopFrequency(PersonalThenGlobal):
    """Buy it again: the user's own items by recency-weighted count, ties and the rest by all-time popularity.

    With seen items excluded only its popularity fallback can rank anything; that is the point of
    reporting it both ways (see `evaluate(exclude_seen=False)` and its repeat/new split).
    """

    name = "personal_top_frequency"
    default_grid: ClassVar[Grid] = {
        "window_days": (None,),
        "personal_weight": (math.inf,),
        "decay": (1.0, 0.9, 0.7, 0.5),
    }


class CategoryPopularity(Popularity):
    """The categories of the user's recent steps, then the most popular items in them.

    A user's weight for category c is the recency-weighted share of their last `history_steps` steps in c
    (decay 0: the newest step's category alone), or with `scope` "session" the share of the session in
    progress only; an item scores its category's weight (max 1) plus `popularity_weight` times its
    popularity rank. Where interest moves within a category, as in most
    retail sessions, this is the baseline to beat; a log without item categories skips it.
    """

    name = "category_popularity"
    default_grid: ClassVar[Grid] = {
        "window_days": (None, 7.0),
        "decay": (0.0, 0.5, 0.8, 1.0),
        "popularity_weight": (0.1, 0.5, 1.0),
        "scope": ("recent", "session"),
    }

    def __init__(self, history_steps: int = 50, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history_steps = history_steps

    def _learn(self, train: SequenceData) -> None:
        if train.item_category is None:
            self.skipped = "the log names no item categories"
            return
        super()._learn(train)
        categories = train.item_category.astype(np.int64)
        self._item_category = categories
        self._in_category = category_membership(categories)

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        sessions = 1 if self.params.get("scope") == "session" else None
        recent = history_weights(
            data, users, cut, decay=self.params["decay"], last=self.history_steps, sessions=sessions
        )
        mix = (recent.astype(np.float32) @ self._in_category).toarray()
        mix[:, 0] = 0.0  # padding and items without a category carry no interest
        peak = mix.max(axis=1, keepdims=True)
        np.divide(mix, peak, out=mix, where=peak > 0)
        out = mix[:, self._item_category]
        out += self.params["popularity_weight"] * self._key.astype(np.float32)
        return out


class ItemKNN(GridTuned):
    """Item-to-item cosine similarity of who touched what in training, `neighbours` kept per item.

    A user's score for item j sums the similarity of j to each of their last `history_steps` items,
    the a-th newest weighted decay**a; items with no similar history fall back to popularity.
    """

    name = "item_knn"
    default_grid: ClassVar[Grid] = {"neighbours": (20, 50, 100, 200), "decay": (1.0, 0.7, 0.5, 0.3)}

    def __init__(self, history_steps: int = 50, block_cells: int = 20_000_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history_steps = history_steps
        self.block_cells = block_cells

    def _learn(self, train: SequenceData) -> None:
        self._tie_break = (TIE_BREAK * popularity_key(item_counts(train))).astype(np.float32)
        self._size = train.n_items + 1
        self._entries = cosine_neighbours(user_item_matrix(train), max(self.grid["neighbours"]), self.block_cells)

    def _use(self, params: dict[str, Any]) -> None:
        super()._use(params)
        rows, cols, values, rank = self._entries
        keep = rank < params["neighbours"]
        self._similar = sp.csr_matrix(
            (values[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(self._size, self._size)
        )

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        recent = history_weights(data, users, cut, decay=self.params["decay"], last=self.history_steps)
        similar = (recent.astype(np.float32) @ self._similar).toarray()
        peak = similar.max(axis=1, keepdims=True)
        np.divide(similar, peak, out=similar, where=peak > 0)
        similar += self._tie_break
        return similar


def cosine_neighbours(
    users_items: sp.csr_matrix, k: int, block_cells: int = 20_000_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(item, neighbour, cosine, rank) for each item's `k` most similar other items.

    The item x item product is built a block of items at a time (about `block_cells` cells each), so a
    large catalogue never needs its full co-occurrence matrix at once.
    """
    columns = sp.csc_matrix(users_items, dtype=np.float64)
    norms = np.sqrt(np.asarray(columns.multiply(columns).sum(axis=0)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    by_column = sp.csc_matrix(columns @ sp.diags(inverse))
    by_row = sp.csr_matrix(by_column)
    n = columns.shape[1]
    step = max(1, block_cells // max(n, 1))
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, n, step):
        block = sp.coo_matrix(by_column[:, start : start + step].T @ by_row)
        off_diagonal = block.row + start != block.col
        block = sp.coo_matrix(
            (block.data[off_diagonal], (block.row[off_diagonal], block.col[off_diagonal])), shape=block.shape
        )
        rows, cols, values, rank = top_entries(block, k)
        parts.append((rows + start, cols, values, rank))
    rows, cols, values, rank = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    return rows, cols, values, rank


class Transitions(GridTuned):
    """First-order Markov chain: P(next item | item) from consecutive training steps of the same user.

    Scores mix the transition rows of the last `history_steps` items (the a-th newest weighted decay**a;
    decay 0 = the last item alone) and back off to popularity with weight `backoff`.
    """

    name = "transitions"
    default_grid: ClassVar[Grid] = {"decay": (0.0, 0.3, 0.6), "backoff": (0.01, 0.1, 0.3)}

    def __init__(self, history_steps: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history_steps = history_steps

    def _learn(self, train: SequenceData) -> None:
        counts = item_counts(train)
        self._pop = (counts / max(counts.sum(), 1.0)).astype(np.float32)
        self._next = transition_probabilities(train).astype(np.float32)

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        recent = history_weights(data, users, cut, decay=self.params["decay"], last=self.history_steps)
        total = np.asarray(recent.sum(axis=1)).ravel()
        recent = sp.diags(np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)) @ recent
        backoff = np.float32(self.params["backoff"])
        moves = (recent.astype(np.float32) @ self._next).toarray()
        moves *= 1 - backoff
        moves += backoff * self._pop
        return moves


def transition_probabilities(train: SequenceData) -> sp.csr_matrix:
    """(n_items + 1)² row-stochastic matrix of item -> next item over consecutive steps of each user.

    Only steps that are touches count as a "next item": a deepening (buying what was viewed a step ago) is
    not a choice of the item, as it is never a target in evaluation either.
    """
    size = train.n_items + 1
    same_user = train.is_touch[1:].copy()
    boundaries = train.offsets[1:-1] - 1  # last step of each user but the final one
    same_user[boundaries[(boundaries >= 0) & (boundaries < same_user.size)]] = False
    src, dst = train.item[:-1][same_user], train.item[1:][same_user]
    counts = sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(size, size))
    out = np.asarray(counts.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(np.divide(1.0, out, out=np.zeros_like(out), where=out > 0)) @ counts)


class EASE(GridTuned):
    """Steck (2019): B = I - P / diag(P), P = (XᵀX + λI)⁻¹, a closed-form item-item linear model.

    It needs a dense items x items inverse per λ, so catalogues above `max_items` are skipped with a
    reason. The history fed to B is the set of the user's items, optionally recency-weighted (`decay`).
    """

    name = "ease"
    default_grid: ClassVar[Grid] = {"lam": (10.0, 50.0, 200.0, 500.0, 1000.0), "decay": (1.0, 0.7, 0.4)}

    def __init__(self, max_items: int = 20_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_items = max_items

    def _learn(self, train: SequenceData) -> None:
        if train.n_items > self.max_items:
            self.skipped = (
                f"EASE needs a dense {train.n_items}x{train.n_items} inverse; the catalogue exceeds "
                f"max_items={self.max_items}"
            )
            return
        x = user_item_matrix(train)[:, 1:]
        dtype = np.float64 if train.n_items <= 8_000 else np.float32  # halve memory for big catalogues
        self._gram = (x.T @ x).toarray().astype(dtype)
        self._lam: float | None = None
        self._best: tuple[float, np.ndarray] | None = None

    def _use(self, params: dict[str, Any]) -> None:
        super()._use(params)
        if params["lam"] == self._lam:
            return
        if self._best is not None and self._best[0] == params["lam"]:
            self._weights = self._best[1]
        else:
            self._weights = ease_weights(self._gram, params["lam"])
        self._lam = params["lam"]

    def _keep_best(self) -> None:
        self._best = (self.params["lam"], self._weights)

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        seen = history_weights(data, users, cut, decay=self.params["decay"], newest_only=True)
        out = np.zeros((len(users), data.n_items + 1), dtype=np.float32)
        out[:, 1:] = seen[:, 1:] @ self._weights
        return out


def ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """EASE's item-item weights from the Gram matrix XᵀX (float32; zero diagonal).

    XᵀX + λI is symmetric positive definite, so it is inverted through its Cholesky factor (half the
    work of a general inverse).
    """
    regularised = gram.copy()
    regularised[np.diag_indices_from(regularised)] += lam
    potrf, potri = scipy.linalg.get_lapack_funcs(("potrf", "potri"), (regularised,))
    factor, info = potrf(regularised, lower=False, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"XᵀX + {lam}·I is not positive definite (LAPACK potrf info {info})")
    upper, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverting XᵀX + {lam}·I failed (LAPACK potri info {info})")
    precision = np.triu(upper) + np.triu(upper, 1).T
    weights = precision / (-np.diag(precision))[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights.astype(np.float32)


def all_baselines(tune_exclude_seen: bool = True) -> list[GridTuned]:
    """One of each baseline, tuned for the given protocol: the comparison table's rows."""
    kinds: list[type[GridTuned]] = [
        Popularity,
        PersonalTopFrequency,
        PersonalThenGlobal,
        CategoryPopularity,
        ItemKNN,
        Transitions,
        EASE,
    ]
    return [kind(tune_exclude_seen=tune_exclude_seen) for kind in kinds]
