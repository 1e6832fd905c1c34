"""Item-to-item answers for /similar and /bought-together, from who did what in the stored event log.

Two cosine neighbour lists over users, each item's 50 closest kept: "viewed together" over every
step (views, favourites, carts, purchases) and "bought together" over purchases alone. Users are the
baskets, not sessions: in a private-domain log most orders hold one item, so same-order pairs are too
rare to rank by, while a person's purchases over time say which items go together for them.
Built on the refresh tick beside users' paths; per request it is one sparse row per item asked about.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from training.sequence.baselines import cosine_neighbours

NEIGHBOURS = 50
PURCHASE = "purchase"


@dataclass(frozen=True)
class RelatedItem:
    item_id: str
    score: float  # cosine similarity, summed over the items asked about
    because_of: str  # the asked-about item that contributed most


class RelatedItems:
    """Neighbour lists by item id; items never stepped on have none (callers fall back to their category)."""

    def __init__(self, steps: pd.DataFrame, neighbours: int = NEIGHBOURS) -> None:
        """`steps`: one row per step event with `user_id`, `item_id` and `event_type`."""
        item, items = pd.factorize(steps["item_id"].astype(str))
        user, users = pd.factorize(steps["user_id"].astype(str))
        self.item_ids = np.asarray(items, dtype=object)
        self.rows = pd.Index(items)
        bought = (steps["event_type"] == PURCHASE).to_numpy()
        self.viewed = _neighbour_matrix(user, item, len(users), len(items), neighbours)
        self.bought = _neighbour_matrix(user[bought], item[bought], len(users), len(items), neighbours)

    def knows(self, item_id: str) -> bool:
        return item_id in self.rows

    def viewed_with(self, item_ids: list[str], n: int, exclude: set[str] = frozenset()) -> list[RelatedItem]:
        """Items most often touched by the users who touched `item_ids`."""
        return self._best(self.viewed, item_ids, n, exclude)

    def bought_with(self, item_ids: list[str], n: int, exclude: set[str] = frozenset()) -> list[RelatedItem]:
        """Items most often bought by the users who bought `item_ids`."""
        return self._best(self.bought, item_ids, n, exclude)

    def _best(self, matrix: sp.csr_matrix, item_ids: list[str], n: int, exclude: set[str]) -> list[RelatedItem]:
        rows = self.rows.get_indexer(item_ids)
        asked = [(item_id, row) for item_id, row in zip(item_ids, rows, strict=True) if row >= 0]
        if not asked or n <= 0:
            return []
        part = matrix[[row for _, row in asked]].toarray()  # asked x items
        total = part.sum(axis=0)
        skip = self.rows.get_indexer([*item_ids, *exclude])
        total[skip[skip >= 0]] = 0.0
        order = np.argsort(-total, kind="stable")[:n]
        order = order[total[order] > 0]
        strongest = part[:, order].argmax(axis=0)
        return [
            RelatedItem(str(self.item_ids[col]), float(total[col]), asked[who][0])
            for col, who in zip(order, strongest, strict=True)
        ]


def _neighbour_matrix(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int, k: int) -> sp.csr_matrix:
    """items x items: each item's k most cosine-similar others over the binary user x item matrix."""
    touched = sp.csr_matrix((np.ones(user.size, dtype=np.float32), (user, item)), shape=(n_users, n_items))
    touched.data[:] = 1.0  # duplicates were summed: who touched what, not how often
    rows, cols, values, _ = cosine_neighbours(touched, k)
    return sp.csr_matrix((values.astype(np.float32), (rows, cols)), shape=(n_items, n_items))
