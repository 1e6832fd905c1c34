"""How much of the oracle's next-item NDCG@10 the log itself can support: the oracle, told less rung by rung.

The world's oracle ranks with truths no log shows: each item's exact popularity within its category, the
session's intent stage (which sets how much a session leans on complements and due items), where the
session began and which category it was opened for. Each rung below hides one more of them and ranks the
same test questions through the same harness:

- `oracle`: everything the world knows.
- `estimated_shares`: item popularity within its category counted from the training touches.
- `stage_blind`: and the intent stage replaced by its average (`siyu.world.next_item.stage_blind`).
- `session_from_gaps`: and the session read from the log as every model must read it: a request an hour
  or more after the newest step opens a new session, and the session's category is the most common one
  among its steps so far.

The last rung still knows the true complement and due rows, the day's drifted category mix and which
sessions are replenishment visits, so it bounds from above what a model reading the log can reach; it
is not an estimate of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from siyu.settings import Settings
from siyu.world.next_item import Knowledge, stage_blind
from training.sequence.data import Split, opens_session
from training.sequence.evaluation import OracleRecommender, evaluate
from training.sequence.inference import query_tokens
from training.sequence.signals import category_membership, history_weights
from training.sequence.world_truth import oracle_for, true_user_ids

RUNGS = ("oracle", "estimated_shares", "stage_blind", "session_from_gaps")


def observable_ceiling(settings: Settings, split: Split) -> dict[str, float]:
    """NDCG@10 on `split.test` (seen items excluded) of each rung, in RUNGS order; {} without world truth."""
    world_category = _world_categories(settings)
    if world_category is None:
        return {}
    shares = _estimated_shares(split, world_category)
    from_gaps = _session_from_gaps(settings, split, world_category)
    told = {
        "oracle": (None, None),
        "estimated_shares": (None, shares),
        "stage_blind": (stage_blind, shares),
        "session_from_gaps": (lambda rows: from_gaps(stage_blind(rows)), shares),
    }
    out: dict[str, float] = {}
    for rung in RUNGS:
        knowledge, given_shares = told[rung]
        source = oracle_for(settings, split.data, knowledge, given_shares)
        if source is None:
            return {}
        out[rung] = evaluate(OracleRecommender(source, name=rung), split, "test")["ndcg@10"]
    return out


def _world_categories(settings: Settings) -> pd.Series | None:
    """item id -> the world's category index, or None when the world's truth is not there."""
    path = settings.truth_dir / "items.parquet"
    if not path.exists():
        return None
    return pd.read_parquet(path, columns=["item_id", "category"]).set_index("item_id")["category"]


def _estimated_shares(split: Split, world_category: pd.Series) -> pd.Series:
    """item id -> its share of its category's training touches: the popularity a model can count."""
    train = split.train
    counts = np.bincount(train.item[train.is_touch], minlength=train.n_items + 1)[1:].astype(float)
    touches = pd.Series(counts, index=split.data.item_vocab)
    category = world_category.reindex(touches.index)
    return touches / touches.groupby(category).transform("sum").replace(0.0, 1.0)


def _session_from_gaps(settings: Settings, split: Split, world_category: pd.Series) -> Knowledge:
    """A rewrite of the truth rows that puts the log's reading of each test question's session in place of
    the truth's: whether the target opens a session, and the session's category."""
    data, questions = split.data, split.test
    category = world_category.reindex(data.item_vocab).fillna(-1).to_numpy(dtype=np.int64)
    token_category = np.concatenate([[0], category + 1])  # 0: padding or an item the world does not have
    session = history_weights(data, questions.users, questions.cut, sessions=1) @ category_membership(token_category)
    session = session.toarray()
    session[:, 0] = 0.0
    opens = opens_session(query_tokens(data, questions.users, questions.cut))  # the request read as a step
    read = pd.DataFrame(
        {
            "session_category": session.argmax(axis=1) - 1,
            "first_step": opens | (questions.cut == 0) | (session.sum(axis=1) == 0),
        },
        index=true_user_ids(settings).reindex(data.user_ids[questions.users]).to_numpy(),
    )
    read = read[read.index.notna() & (read["session_category"] >= 0)]
    read = read[~read.index.duplicated()]

    def knowledge(rows: pd.DataFrame) -> pd.DataFrame:
        out = rows.copy()
        known = read.index.intersection(out.index)
        out.loc[known, "session_category"] = read.loc[known, "session_category"].to_numpy(dtype=np.int32)
        out.loc[known, "first_step"] = read.loc[known, "first_step"].to_numpy(dtype=bool)
        return out

    return knowledge
