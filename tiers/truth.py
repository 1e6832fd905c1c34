"""How well the tiers match the synthetic world's truth: each user's true lifecycle stage on the date.

The world moves every user through signed-up -> new (14 days) -> active -> dormant (visits at 12% of
the rate) -> churned (no visits). Our `new / old / dormant` is read from behaviour only; here it is
scored against the true stage (active counts as old; dormant and churned both as dormant).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from siyu.data import schema
from siyu.data.store import read_table
from siyu.metrics import auc
from siyu.settings import Settings
from siyu.world.simulate import session_rates
from tiers.churn import ChurnModel

NEW_DAYS = 14  # the world's new-user period (see siyu.world.simulate.expected_sessions)


def true_lifecycle(settings: Settings, user_ids: pd.Index, as_of: pd.Timestamp) -> pd.Series | None:
    """Each unified user's true stage on the day before `as_of` (None when the data has no truth)."""
    truth_dir = settings.truth_dir
    if not (truth_dir / "users.parquet").exists():
        return None
    world = json.loads(settings.truth_world_path.read_text())
    day = (as_of.tz_convert(None).normalize() - pd.Timestamp(world["start"])).days - 1
    users = pd.read_parquet(truth_dir / "users.parquet", columns=["user_id", "signup_day", "dormant_day", "churn_day"])
    stage = users.set_index("user_id").reindex(_true_ids(settings, user_ids))
    label = np.select(
        [day < stage["signup_day"] + NEW_DAYS, day < stage["dormant_day"]], ["new", "old"], default="dormant"
    )
    return pd.Series(np.where(stage["signup_day"].isna(), None, label), index=user_ids, name="true_lifecycle")


def true_expected_purchases(settings: Settings, user_ids: pd.Index, at: pd.Timestamp, days: int) -> pd.Series | None:
    """Each unified user's expected purchases in the `days` from `at`, by the world's own parameters (None when
    the data has no truth): the oracle churn is judged against, as P(no purchase) falls with it.

    Their true session rate summed over the window (lifecycle stage, visit rhythm, weekends), times their
    purchases per session as the truth's purchase probabilities of every impression they were shown say.
    """
    truth_dir = settings.truth_dir
    if not (truth_dir / "users.parquet").exists() or not settings.truth_impressions_path.exists():
        return None
    world = json.loads(settings.truth_world_path.read_text())
    start = pd.Timestamp(world["start"])
    first_day = (at.tz_convert(None).normalize() - start).days
    columns = ["user_id", "visit_rate", "signup_day", "dormant_day", "churn_day"]
    users = pd.read_parquet(truth_dir / "users.parquet", columns=columns).set_index("user_id")
    rate = sum(
        session_rates(*(users[c].to_numpy() for c in columns[1:]), start.date(), day)
        for day in range(first_day, first_day + days)
    )
    shown = pd.read_parquet(settings.truth_impressions_path, columns=["user_id", "session_id", "true_purchase_prob"])
    per_user = shown.groupby("user_id").agg(p=("true_purchase_prob", "sum"), sessions=("session_id", "nunique"))
    per_session = (per_user["p"] / per_user["sessions"]).reindex(users.index)
    expected = pd.Series(rate * per_session.fillna(per_session.mean()).to_numpy(), index=users.index)
    return pd.Series(expected.reindex(_true_ids(settings, user_ids)).to_numpy(), index=user_ids, name="expected")


def churn_oracle_auc(settings: Settings, churn: ChurnModel) -> float | None:
    """The AUC of the world's expected purchases (fewer: likelier none) on churn's own test users and outcomes."""
    labels = churn.test_labels
    expected = true_expected_purchases(settings, labels.index, churn.tested_at, churn.horizon_days)
    if expected is None:
        return None
    known = expected.notna().to_numpy()
    return auc(labels.to_numpy()[known], -expected.to_numpy()[known])


def _true_ids(settings: Settings, user_ids: pd.Index) -> np.ndarray:
    """The world's own id of each unified user (NaN for ids the truth cannot place)."""
    keys = pd.read_parquet(settings.truth_identity_path)
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    owner = identity.merge(keys, on=["user_key_type", "user_key"]).drop_duplicates("user_id")
    return owner.set_index("user_id")["true_user_id"].reindex(user_ids).to_numpy()


def lifecycle_agreement(predicted: pd.Series, truth: pd.Series) -> dict[str, float]:
    """Accuracy, and recall and precision of each stage, over users with a known true stage."""
    both = pd.concat([predicted.rename("ours"), truth.rename("true")], axis=1).dropna()
    out = {"accuracy": float((both["ours"] == both["true"]).mean()), "users": float(len(both))}
    for stage in ("new", "old", "dormant"):
        actual, called = both["true"] == stage, both["ours"] == stage
        out[f"{stage}_recall"] = float((called & actual).sum() / max(actual.sum(), 1))
        out[f"{stage}_precision"] = float((called & actual).sum() / max(called.sum(), 1))
    return out
