"""The generated world's true next-item probabilities, lined up with the sequences a model sees.

The truth is keyed by the world's true user ids; sequences from `from_events` by the unified ids
identity resolution gives. This bridges the two through the identifiers both know, and keeps a
user's oracle row only when the truth's evaluation step is the user's last touch in the sequences
(same item): an oracle scored on a different step than the models would not be a ceiling.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from siyu.data import schema
from siyu.data.store import read_table
from siyu.settings import Settings
from siyu.world.next_item import Knowledge, oracle_next_item_scores
from training.sequence.data import SequenceData, last_touches
from training.sequence.evaluation import OracleSource


def oracle_for(
    settings: Settings, data: SequenceData, knowledge: Knowledge | None = None, shares: pd.Series | None = None
) -> OracleSource | None:
    """A callable (unified user ids, item ids) -> probabilities, or None when the data has no world truth.

    `knowledge` and `shares` make a less knowing oracle (see `oracle_next_item_scores`)."""
    if not settings.truth_next_item_path.exists():
        return None
    truth = pd.read_parquet(settings.truth_next_item_path, columns=["user_id", "item_id"])
    true_of = true_user_ids(settings)
    _, last, _ = last_touches(data)  # the test target: the user's last touch
    last_item = np.where(last >= 0, data.item_vocab[data.item[data.offsets[:-1] + np.maximum(last, 0)] - 1], None)
    frame = pd.DataFrame({"unified": data.user_ids, "true": true_of.reindex(data.user_ids).to_numpy()})
    frame["truth_item"] = frame["true"].map(truth.set_index("user_id")["item_id"])
    aligned = frame["truth_item"].to_numpy() == last_item
    true_id = pd.Series(np.where(aligned, frame["true"], None), index=frame["unified"])

    def scores(user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        mapped = true_id.reindex(user_ids).fillna("").to_numpy()
        return oracle_next_item_scores(settings, list(mapped), list(item_ids), knowledge, shares)

    return scores


def true_user_ids(settings: Settings) -> pd.Series:
    """unified user id -> the world's true user id, through identifiers in both the identity map and the truth."""
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    truth = pd.read_parquet(settings.truth_identity_path)
    both = identity.merge(truth, on=["user_key_type", "user_key"])
    return both.drop_duplicates("user_id").set_index("user_id")["true_user_id"]
