"""The decision-path model's reading of an impression, as point-in-time features of it.

An impression is user u viewing item i at time t in session s. Two features come from one pass of the
model: `session_intent`, its P(a purchase follows in this session), and `path_affinity`, the log-probability
it gave i as the user's next item. Both read only what was knowable just before t: u's steps from sessions
that began before s (a user's sessions do not overlap, so all of them were in the past) and s's own steps
from events before t. Steps are touches and deepenings, each known at its own time (see `path_steps`), so
nothing at or after t is read: the features can sit in a training row beside its label, and serving
computes the same thing at request time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from training.sequence.data import SequenceData, epoch_seconds, from_steps
from training.sequence.recommender import SASRecRecommender
from training.sequence.sources import event_steps, step_events

PATH_FEATURES = ("session_intent", "path_affinity")
PRIOR_STEPS = 50  # steps from earlier sessions read per impression: the recent past carries the intent
CHUNK = 50_000  # impressions per pass, which bounds the step table held at once
READ_BATCH = 1_024  # histories scored over the whole catalogue at once
_TIME_SHIFT = 2**34  # user code * this + epoch seconds orders steps by (user, time) in one int64


def path_features(
    recommender: SASRecRecommender,
    events: pd.DataFrame,
    impressions: pd.DataFrame,
    prior_steps: int = PRIOR_STEPS,
) -> pd.DataFrame:
    """PATH_FEATURES per impression (same index). Without history: the training intent rate and NaN affinity;
    an item the model never saw also gets NaN affinity (LightGBM treats it as missing).

    `events` is the event log with a `user_id` column (unified ids); `impressions` has user_id, item_id,
    session_id and event_timestamp.
    """
    steps = event_steps(events, events["user_id"])
    codes, names = pd.factorize(steps["user_id"])
    order = np.lexsort((steps["time"].to_numpy(), codes))
    steps = steps.iloc[order].reset_index(drop=True)
    step_key = codes[order].astype(np.int64) * _TIME_SHIFT + steps["time"].to_numpy(dtype=np.int64)
    users = pd.Index(names)
    in_session = _in_session_events(events)
    starts = in_session.groupby("session_id")["seconds"].min()
    intent = np.full(len(impressions), recommender.intent_base_rate, dtype=np.float32)
    affinity = np.full(len(impressions), np.nan, dtype=np.float32)
    item_token = pd.Index([str(v) for v in recommender.item_vocab]).get_indexer(impressions["item_id"].astype(str)) + 1
    for lo in range(0, len(impressions), CHUNK):
        chunk = impressions.iloc[lo : lo + CHUNK]
        key = np.arange(lo, lo + len(chunk))
        seconds = epoch_seconds(chunk["event_timestamp"])
        start = starts.reindex(chunk["session_id"]).to_numpy(dtype=np.float64)
        start = np.where(np.isnan(start), seconds, start).astype(np.int64)
        prior = _prior_steps(steps, step_key, users.get_indexer(chunk["user_id"]), start, key, prior_steps)
        so_far = _session_so_far(in_session, chunk["session_id"].to_numpy(), seconds, key)
        table = pd.concat([prior, so_far], ignore_index=True)
        if table.empty:
            continue
        for column in ("item_id", "session_id", "channel"):
            table[column] = table[column].astype(str)
        table = table.astype({"user_id": np.int64, "time": np.int64})
        own = from_steps(table)
        data, cut, _ = recommender.in_model_vocab(own, np.arange(own.n_users), own.lengths)
        rows = data.user_ids.astype(np.int64)
        intent[rows], affinity[rows] = _read(recommender, data, cut, item_token[rows])
    return pd.DataFrame({"session_intent": intent, "path_affinity": affinity}, index=impressions.index)


def _read(
    recommender: SASRecRecommender, data: SequenceData, cut: np.ndarray, token: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per history (data in the model's vocabulary): intent, and log P(next item = token) (NaN for token 0)."""
    intent = np.empty(data.n_users, dtype=np.float32)
    affinity = np.full(data.n_users, np.nan, dtype=np.float32)
    for lo in range(0, data.n_users, READ_BATCH):
        users = np.arange(lo, min(lo + READ_BATCH, data.n_users))
        scores, intent[users] = recommender.read(data, users, cut[users])
        log_p = torch.log_softmax(torch.from_numpy(scores), dim=1).numpy()
        known = (cut[users] > 0) & (token[users] > 0)
        affinity[users[known]] = log_p[np.flatnonzero(known), token[users[known]]]
    return intent, affinity


def _in_session_events(events: pd.DataFrame) -> pd.DataFrame:
    kept = step_events(events)
    columns = ["session_id", "item_id", "event_time", "event_type", "channel"]
    return kept[columns].assign(seconds=epoch_seconds(kept["event_time"]))


def _prior_steps(
    steps: pd.DataFrame, step_key: np.ndarray, user: np.ndarray, start: np.ndarray, key: np.ndarray, limit: int
) -> pd.DataFrame:
    """Each impression's user's last `limit` steps that began before its session did, keyed by impression."""
    known = user >= 0
    base = np.where(known, user, 0).astype(np.int64) * _TIME_SHIFT
    end = np.searchsorted(step_key, base + start, side="left")
    first = np.searchsorted(step_key, base, side="left")
    begin = np.maximum(first, end - limit)
    counts = np.where(known, end - begin, 0)
    index = np.repeat(begin, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return steps.iloc[index].assign(user_id=np.repeat(key, counts))


def _session_so_far(
    in_session: pd.DataFrame, session: np.ndarray, seconds: np.ndarray, key: np.ndarray
) -> pd.DataFrame:
    """The steps of each impression's session from events strictly before it, keyed by impression."""
    asked = pd.DataFrame({"session_id": session, "_key": key, "_before": seconds})
    pairs = asked.merge(in_session, on="session_id")
    pairs = pairs[pairs["seconds"] < pairs["_before"]]
    if pairs.empty:
        return pd.DataFrame(columns=["user_id", "item_id", "time", "action", "channel", "session_id"])
    return event_steps(pairs, pairs["_key"].to_numpy())
