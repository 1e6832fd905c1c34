"""Count signals the simple next-item baselines are built from, as sparse matrices over item tokens.

Column k of every matrix here is item token k (column 0, padding, stays empty), so a baseline's scores
line up with the harness's (users, n_items + 1) layout without re-indexing.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from training.sequence.data import SequenceData, history_positions, opens_session

DAY_SECONDS = 86_400


def item_counts(train: SequenceData, window_days: float | None = None) -> np.ndarray:
    """Steps per item token (n_items + 1,), optionally only those in the last `window_days` of training."""
    items = train.item
    if window_days is not None and train.n_steps:
        items = items[train.time >= train.time.max() - window_days * DAY_SECONDS]
    return np.bincount(items, minlength=train.n_items + 1).astype(np.float64)


def popularity_key(primary: np.ndarray, secondary: np.ndarray | None = None) -> np.ndarray:
    """Item order by `primary`, ties broken by `secondary`, as dense ranks scaled into [0, 1).

    Ranks, not raw counts, so the order survives float32 exactly; equal (primary, secondary) stay tied,
    so no item gains from an arbitrary tie-break (e.g. its id).
    """
    key = rankdata(primary, method="dense").astype(np.float64)
    if secondary is not None:
        key = rankdata(key * (secondary.max() + 1.0) + secondary, method="dense").astype(np.float64)
    key -= 1.0
    key[0] = 0.0
    return key / (key.max() + 1.0)


def user_item_matrix(train: SequenceData) -> sp.csr_matrix:
    """Binary (users, n_items + 1): which items each user touched in training (the co-occurrence basis)."""
    rows = np.repeat(np.arange(train.n_users), train.lengths)
    matrix = sp.csr_matrix(
        (np.ones(train.n_steps, dtype=np.float32), (rows, train.item)), shape=(train.n_users, train.n_items + 1)
    )
    matrix.data[:] = 1.0  # a user who came back to an item still counts once
    return matrix


def category_membership(item_category: np.ndarray) -> sp.csr_matrix:
    """(n_items + 1, categories + 1) one-hot: row k marks item token k's category token (0 = none)."""
    categories = np.asarray(item_category, dtype=np.int64)
    return sp.csr_matrix(
        (np.ones(categories.size, dtype=np.float32), (np.arange(categories.size), categories)),
        shape=(categories.size, int(categories.max()) + 1),
    )


def history_weights(
    data: SequenceData,
    users: np.ndarray,
    cut: np.ndarray,
    decay: float = 1.0,
    last: int | None = None,
    newest_only: bool = False,
    sessions: int | None = None,
) -> sp.csr_matrix:
    """(len(users), n_items + 1) recency-weighted histories: a step `a` steps before the newest weighs decay**a.

    Repeated items add up (a frequency) unless `newest_only`, which keeps each item's newest occurrence
    (a set with recency). `last` keeps only the newest `last` steps; decay 0 keeps the newest step alone.
    `sessions` keeps only the steps of the history's newest `sessions` sessions (1: the session in progress).
    """
    positions, indptr = history_positions(data, users, cut)
    lengths = np.diff(indptr)
    rows = np.repeat(np.arange(lengths.size), lengths)
    age = np.repeat(indptr[1:], lengths) - 1 - np.arange(positions.size)
    items = data.item[positions].astype(np.int64)
    keep = np.ones(positions.size, dtype=bool) if last is None else age < last
    if sessions is not None and positions.size:
        opened = np.cumsum(opens_session(data.gap[positions]))
        newer_openings = opened[np.repeat(indptr[1:], lengths) - 1] - opened  # sessions begun after each step
        keep &= newer_openings < sessions
    if newest_only:
        key = rows * (data.n_items + 1) + items
        order = np.lexsort((age, key))
        first = np.ones(order.size, dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        newest = np.zeros(positions.size, dtype=bool)
        newest[order[first]] = True
        keep &= newest
    weights = np.power(float(decay), age[keep].astype(np.float64))
    return sp.csr_matrix((weights, (rows[keep], items[keep])), shape=(lengths.size, data.n_items + 1))


def row_normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its maximum (rows without signal stay empty): per-user scale-free scores."""
    matrix = sp.csr_matrix(matrix, copy=True)
    peak = matrix.max(axis=1).toarray().ravel()
    scale = np.divide(1.0, peak, out=np.zeros_like(peak, dtype=np.float64), where=peak > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix)


def top_entries(matrix: sp.spmatrix, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, value, rank within row) of each row's `k` largest non-zero entries, rank 0 the largest.

    Returning the rank lets a caller cut the same result down to any smaller k without sorting again.
    A dense-ish block is selected with a partition per row (linear), a sparse one by sorting its entries.
    """
    rows_n, cols_n = matrix.shape
    if matrix.nnz > 0.05 * rows_n * cols_n:
        return _top_entries_dense(matrix.toarray(), k)
    coo = sp.coo_matrix(matrix)
    nonzero = coo.data != 0
    rows, cols, values = coo.row[nonzero].astype(np.int64), coo.col[nonzero].astype(np.int64), coo.data[nonzero]
    order = np.lexsort((-values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    rank = np.arange(rows.size) - np.searchsorted(rows, rows, side="left")
    keep = rank < k
    return rows[keep], cols[keep], values[keep], rank[keep]


def _top_entries_dense(dense: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    k = min(k, dense.shape[1])
    if k == 0 or dense.shape[0] == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=dense.dtype), empty
    cols = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(dense, cols, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    cols, values = np.take_along_axis(cols, order, axis=1), np.take_along_axis(values, order, axis=1)
    rows = np.repeat(np.arange(dense.shape[0]), k).reshape(dense.shape[0], k)
    rank = np.broadcast_to(np.arange(k), (dense.shape[0], k))
    keep = values != 0  # zeros sort last, so the ranks of the kept entries stay 0, 1, ...
    return rows[keep], cols[keep].astype(np.int64), values[keep], rank[keep]
