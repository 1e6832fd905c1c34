"""Units sold since each catalogue item's stock count: the live-stock features at request time.

The item table's stock was counted when its snapshot was taken; every purchase logged since then
has used some of it (a request's `now` comes after all of them). The log's share is counted once per
catalogue and log (a merge over all of the log's purchases takes tens of milliseconds at 30k users,
so the refresh tick warms it rather than a request), the share of purchases stored since the log's
views were built once per change of those fresh events, which are few.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.recommend.catalog import Catalog
from serving.recommend.fresh_events import FreshEvents
from training.live_stock import units_sold_before

_EVER = np.iinfo(np.int64).max


class SalesSinceCount:
    """(in-stock rows of a catalogue,) units sold since each row's stock count, memoised by what they depend on.

    Each memo is one (catalogue, source, units) tuple swapped in whole: a request reads one consistent
    tuple, and two requests that miss at once only count the same sales twice.
    """

    def __init__(self) -> None:
        self._logged: tuple[Catalog, object, np.ndarray] | None = None
        self._fresh: tuple[Catalog, object, np.ndarray] | None = None

    def units(self, catalog: Catalog, logged: pd.DataFrame | None, fresh: FreshEvents) -> np.ndarray:
        """The catalogue's units sold since its counts: in `logged` purchases (None: the log is unread) and fresh ones.

        NaN for every row while the log is unread: the model takes its missing-value branch, as for the
        other features read from the log.
        """
        if logged is None:
            return np.full(len(catalog.rows), np.nan)
        return self.logged_units(catalog, logged) + self._fresh_units(catalog, fresh)

    def logged_units(self, catalog: Catalog, logged: pd.DataFrame) -> np.ndarray:
        self._logged = memo = _counted(self._logged, catalog, logged, logged)
        return memo[2]

    def _fresh_units(self, catalog: Catalog, fresh: FreshEvents) -> np.ndarray:
        self._fresh = memo = _counted(self._fresh, catalog, fresh, fresh.purchases)
        return memo[2]


def _counted(
    memo: tuple[Catalog, object, np.ndarray] | None, catalog: Catalog, source: object, purchases: pd.DataFrame
) -> tuple[Catalog, object, np.ndarray]:
    """`memo` while it was counted for this catalogue from this source, else a new count."""
    if memo is not None and memo[0] is catalog and memo[1] is source:
        return memo
    return catalog, source, _since_count(catalog, purchases)


def _since_count(catalog: Catalog, purchases: pd.DataFrame) -> np.ndarray:
    stock = catalog.in_stock
    n = len(catalog.rows)
    return units_sold_before(purchases, stock["item_id"], stock["counted_ns"], np.full(n, _EVER))
