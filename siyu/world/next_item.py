"""The true next-item distribution at each user's last observable step: what a perfect sequential recommender knows.

The item that matters is the next one the user *touches* (their first event on it in a session; the
sequences' later deepening steps, such as buying it, are never targets); online impressions are
observable (as views), store impressions only when bought. A user's evaluation point is their last
observable touch. The oracle conditions on that step's actual context: the day-start state of its day, the
session's intent stage, channel and category, and the items the session showed before it. Given
that, the session's draws after the first are iid from a known mixture (see
`siyu.world.sequential`), so

    P(next item = i) is proportional to
        P_d(category of i | u) x w_i                                      for the session's first item
        taste_rate x [category of i = session category] x w_i + seq_rate(i)   after it

with w_i the item's within-category share and items the session already showed set to 0. For a
store session the step is only seen when bought, so each item is also weighted by its true purchase
probability then (a simplification: the draws that were not bought are not followed through).

`truth/next_item.parquet` holds those ingredients per user; `oracle_next_item_scores` rebuilds the
dense probabilities for evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from siyu.settings import Settings
from siyu.world.entities import BASE_LOGIT, PRICE_WEIGHT, PROMO_BOOST, STORE_BOOST, TASTE_WEIGHT
from siyu.world.sequential import (
    COMPLEMENT_DRAWS,
    DUE_DRAWS,
    STAGE_LOGIT,
    STAGE_PROBS,
    STAGES,
    STORE_DRAW_SCALE,
    TASTE_DRAWS,
    ChoiceState,
)

if TYPE_CHECKING:
    from siyu.world.simulate import Simulator

IMPRESSION_COLUMNS = (
    "session_id",
    "user_id",
    "item_id",
    "event_time",
    "channel",
    "purchased",
    "intent_stage",
    "replenishment",
)
USER_BLOCK = 2000  # users per dense block when rebuilding the probabilities


def last_observable_steps(impressions: pd.DataFrame) -> pd.DataFrame:
    """Each user's last observable impression (online, or bought in store), by event time."""
    observable = impressions[(impressions["channel"] != "pos") | impressions["purchased"]]
    return observable.sort_values("event_time", kind="stable").groupby("user_id", sort=False).tail(1)


def next_item_truth(sim: Simulator, states: Sequence[ChoiceState], impressions: pd.DataFrame) -> pa.Table:
    """One row per user with an observable step: the step, its context and the mixture's ingredients."""
    steps = last_observable_steps(impressions).reset_index(drop=True)
    session = _session_rows(impressions, steps)
    user = pd.Index(sim.users.ids).get_indexer(steps["user_id"])
    day = steps["session_id"].str.slice(1, 5).astype(int).to_numpy()
    stage = pd.Index(STAGES).get_indexer(steps["intent_stage"])
    store = (steps["channel"] == "pos").to_numpy()
    replenishment = steps["replenishment"].to_numpy(dtype=bool)
    scale = np.where(store, STORE_DRAW_SCALE, 1.0)
    opening = session.groupby("step")["item_id"].first().reindex(steps.index).fillna(steps["item_id"])
    before = session[session["before"]]
    probs, seq = _state_ingredients(sim, states, user, day, stage, scale)
    columns = {
        "user_id": pa.array(steps["user_id"], pa.string()),
        "session_id": pa.array(steps["session_id"], pa.string()),
        "item_id": pa.array(steps["item_id"], pa.string()),  # the step's actual item
        "event_time": pa.array(steps["event_time"]),
        "day": pa.array(day, pa.int32()),
        "intent_stage": pa.array(steps["intent_stage"], pa.string()),
        "channel": pa.array(steps["channel"], pa.string()),
        "replenishment": pa.array(replenishment),
        "session_category": pa.array(sim.items.category[pd.Index(sim.items.ids).get_indexer(opening)], pa.int32()),
        "first_step": pa.array(np.bincount(before["step"], minlength=len(steps)) == 0),
        "taste_rate": pa.array(np.where(replenishment, 0.0, scale * TASTE_DRAWS[stage])),
        "logit_offset": pa.array(STAGE_LOGIT[stage] + STORE_BOOST * store),
        "category_probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), probs.shape[1]),
        "seq_item_ids": _lists(seq["step"], sim.items.ids[seq["item"]], len(steps), pa.string()),
        "seq_rates": _lists(seq["step"], seq["rate"], len(steps), pa.float64()),
        "seq_boosts": _lists(seq["step"], seq["boost"], len(steps), pa.float64()),
        "shown_item_ids": _lists(before["step"].to_numpy(), before["item_id"].to_numpy(), len(steps), pa.string()),
    }
    return pa.table(columns)


def _lists(row: np.ndarray, values: np.ndarray, n_rows: int, kind: pa.DataType) -> pa.ListArray:
    """A list column of `n_rows` rows from (row, value) pairs sorted by row (rows without pairs get [])."""
    offsets = np.r_[0, np.cumsum(np.bincount(row, minlength=n_rows))].astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, kind))


def _session_rows(impressions: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """Every impression of each step's session in order (`step` = the step's row), flagged when before the step."""
    keyed = steps[["session_id", "event_time"]].rename(columns={"event_time": "step_time"})
    keyed["step"] = np.arange(len(keyed))
    rows = impressions[["session_id", "item_id", "event_time"]].merge(keyed, on="session_id")
    rows = rows.sort_values(["step", "event_time"], kind="stable")
    rows["before"] = rows["event_time"] < rows["step_time"]
    return rows


def _state_ingredients(
    sim: Simulator,
    states: Sequence[ChoiceState],
    user: np.ndarray,
    day: np.ndarray,
    stage: np.ndarray,
    scale: np.ndarray,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each step's category mix, and its sparse sequential rows (step, item, draw rate, logit boost) by step."""
    probs = np.empty((user.size, sim.centroids.shape[0]), dtype=np.float32)
    parts: list[tuple[np.ndarray, ...]] = []
    for d in np.unique(day):
        rows = np.flatnonzero(day == d)
        state = states[d]
        probs[rows] = state.category_probs(user[rows])
        lo, length = state.indptr[user[rows]], np.diff(state.indptr)[user[rows]]
        step = np.repeat(rows, length)
        entry = np.repeat(lo - (np.cumsum(length) - length), length) + np.arange(step.size)  # row start + offset
        s = stage[step]
        rate = scale[step] * (DUE_DRAWS[s] * state.due_draw[entry] + COMPLEMENT_DRAWS[s] * state.complement_draw[entry])
        parts.append((step, state.item[entry], rate, state.boost()[entry]))
    empty = np.zeros(0)
    step, item, rate, boost = (np.concatenate([empty, *column]) for column in zip(*parts, (empty,) * 4, strict=False))
    order = np.argsort(step, kind="stable")
    return probs, {
        "step": step[order].astype(np.int64),
        "item": item[order].astype(np.int64),
        "rate": rate[order],
        "boost": boost[order],
    }


# What an oracle may know: its truth rows (one per user, indexed by the world's user id) rewritten to hide
# something, e.g. `stage_blind`. The rewrite keeps every column, so the same probabilities follow.
Knowledge = Callable[[pd.DataFrame], pd.DataFrame]


def oracle_next_item_scores(
    source: Settings | Path,
    user_ids: Sequence[str],
    item_ids: Sequence[str],
    knowledge: Knowledge | None = None,
    shares: pd.Series | None = None,
) -> np.ndarray:
    """(len(user_ids), len(item_ids)) float32: each user's true probability of each item at their last observable
    step; NaN rows for users without one, 0 for items the world does not have.

    `source` is the settings of a generated world or its truth directory (which sits in the data directory,
    beside the price book that store steps need). Probabilities are normalised over the world's whole
    catalogue, so a row sums to 1 when `item_ids` is the catalogue. A less knowing oracle, to measure what
    each piece of hidden truth is worth: `knowledge` rewrites the truth rows first, and `shares` (item id ->
    within-category share; missing items 0) replaces the items' true popularity shares.
    """
    if isinstance(source, Settings):
        truth_dir, prices_path = source.truth_dir, source.prices_path
    else:
        truth_dir = Path(source)
        prices_path = truth_dir.parent / "prices.parquet"
    rows = pd.read_parquet(truth_dir / "next_item.parquet").set_index("user_id")
    catalogue = _Catalogue(truth_dir, prices_path)
    if shares is not None:
        catalogue.share = shares.reindex(catalogue.index).fillna(0.0).to_numpy(dtype=float)
    out = np.full((len(user_ids), len(item_ids)), np.nan, dtype=np.float32)
    pick = rows.index.get_indexer(pd.Index(user_ids))
    column = catalogue.index.get_indexer(pd.Index(item_ids))
    wanted = np.flatnonzero(pick >= 0)
    asked = rows.iloc[pick[wanted]]  # only the asked users' rows are rewritten, once per call
    if knowledge is not None:
        asked = knowledge(asked)
    for lo in range(0, wanted.size, USER_BLOCK):
        block = wanted[lo : lo + USER_BLOCK]
        dense = catalogue.probabilities(asked.iloc[lo : lo + USER_BLOCK])
        out[block] = np.where(column >= 0, dense[:, np.maximum(column, 0)], 0.0)
    return out


def stage_blind(rows: pd.DataFrame) -> pd.DataFrame:
    """The truth rows without the session's intent stage: a regular session's draw rates at their average
    over `STAGE_PROBS`. Replenishment sessions keep theirs (every one is in the purchase stage), and whether
    a session is one stays known.

    A row's sequential rate mixes due and complement draws, which the rows do not keep apart, so it is scaled
    by the ratio of the two kinds' summed rates (stage-averaged over the stage's own): an approximation, exact
    only where the two kinds' rates move in step across stages.
    """
    regular = ~rows["replenishment"].to_numpy(dtype=bool)
    stage = pd.Index(STAGES).get_indexer(rows["intent_stage"])
    scale = np.where((rows["channel"] == "pos").to_numpy(), STORE_DRAW_SCALE, 1.0)
    sequential = DUE_DRAWS + COMPLEMENT_DRAWS
    ratio = np.where(regular, float(STAGE_PROBS @ sequential) / sequential[stage], 1.0)
    out = rows.copy()
    out["taste_rate"] = np.where(regular, scale * float(STAGE_PROBS @ TASTE_DRAWS), 0.0)
    out["seq_rates"] = [np.asarray(r, dtype=float) * k for r, k in zip(rows["seq_rates"], ratio, strict=True)]
    return out


class _Catalogue:
    """The item side of the oracle: categories, popularity shares and, for store steps, purchase probabilities."""

    def __init__(self, truth_dir: Path, prices_path: Path) -> None:
        items = pd.read_parquet(truth_dir / "items.parquet")
        self.truth_dir, self.prices_path = truth_dir, prices_path
        self.index = pd.Index(items["item_id"])
        self.category = items["category"].to_numpy()
        self.share = items["within_category_share"].to_numpy()
        self.items = items
        self._users: pd.DataFrame | None = None

    def probabilities(self, rows: pd.DataFrame) -> np.ndarray:
        """(len(rows), items) normalised next-item probabilities of the given oracle rows."""
        # A regular session's first item comes from its category mix; every later draw (and every draw of a
        # replenishment session) from the mixture of the session's category and the sequential rows.
        first = rows["first_step"].to_numpy() & ~rows["replenishment"].to_numpy()
        probs = np.stack(rows["category_probs"].to_numpy()).astype(float)
        same = self.category[None, :] == rows["session_category"].to_numpy()[:, None]
        weight = np.where(
            first[:, None],
            probs[:, self.category] * self.share,
            rows["taste_rate"].to_numpy()[:, None] * same * self.share,
        )
        r, item, rate = self._sparse(rows, "seq_item_ids", "seq_rates")
        np.add.at(weight, (r[~first[r]], item[~first[r]]), rate[~first[r]])
        r, item, _ = self._sparse(rows, "shown_item_ids", None)
        weight[r, item] = 0.0
        store = (rows["channel"] == "pos").to_numpy()
        if store.any():
            weight[store] *= self._purchase_probs(rows[store])
        total = weight.sum(axis=1, keepdims=True)
        return np.where(total > 0, weight / np.where(total > 0, total, 1.0), np.nan)

    def _sparse(self, rows: pd.DataFrame, ids: str, values: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A list column exploded to (row, item column, value)."""
        lengths = rows[ids].map(len).to_numpy()
        r = np.repeat(np.arange(len(rows)), lengths)
        flat_ids = np.concatenate([*rows[ids].to_numpy(), np.array([], dtype=object)])
        item = self.index.get_indexer(flat_ids)
        value = np.concatenate([*rows[values].to_numpy(), np.zeros(0)]) if values else np.ones(r.size)
        return r, item, value.astype(float)

    def _purchase_probs(self, rows: pd.DataFrame) -> np.ndarray:
        """(len(rows), items) true purchase probability of every item for each store step's user, day and boosts."""
        users = self._user_table().loc[rows.index]
        items = self.items
        taste_cols = [c for c in items.columns if c.startswith("vec_")]
        taste = users[[c.replace("vec_", "taste_") for c in taste_cols]].to_numpy()
        logit = (
            (BASE_LOGIT + items["appeal"] + items["level_logit"]).to_numpy()[None, :]
            + TASTE_WEIGHT * taste @ items[taste_cols].to_numpy().T
            + rows["logit_offset"].to_numpy()[:, None]
        )
        price, promo = self._prices(rows["day"].to_numpy())
        list_price = items["list_price"].to_numpy()[None, :]
        beta = users["price_sensitivity"].to_numpy()[:, None]
        logit += -beta * PRICE_WEIGHT * np.log(price / list_price) + PROMO_BOOST * promo
        r, item, boost = self._sparse(rows, "seq_item_ids", "seq_boosts")
        np.add.at(logit, (r, item), boost)
        return 1.0 / (1.0 + np.exp(-logit))

    def _user_table(self) -> pd.DataFrame:
        if self._users is None:
            self._users = pd.read_parquet(self.truth_dir / "users.parquet").set_index("user_id")
        return self._users

    def _prices(self, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(len(day), items) each day's price and promotion flag, from the world's price book."""
        start = pd.Timestamp(json.loads((self.truth_dir / "world.json").read_text())["start"])
        dates = (start + pd.to_timedelta(np.unique(day), unit="D")).date
        book = pd.read_parquet(self.prices_path, filters=[("date", "in", list(dates))])
        price = book.pivot(index="date", columns="item_id", values="price").reindex(columns=self.index)
        promo = book.pivot(index="date", columns="item_id", values="on_promotion").reindex(columns=self.index)
        at = (start + pd.to_timedelta(day, unit="D")).date
        return price.loc[at].to_numpy(dtype=float), promo.loc[at].to_numpy(dtype=float)
