"""Churn risk: P(no purchase in the next `horizon` days), LightGBM on profiles, judged forward in time.

Two snapshots before `as_of`, `horizon` days apart, give an honest test (`tiers.forward`): the model
fits on the earlier snapshot's profiles and what followed them, and is scored on the later
snapshot's. The strongest simple baseline,
days since the last purchase, is scored on the same rows. The model that is kept is refitted on the
later snapshot, the freshest fully observed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from siyu.metrics import auc
from tiers.forward import PROFILE_MODEL_PARAMS, PROFILE_MODEL_ROUNDS, forward_snapshots
from tiers.profile import PROFILE_COLUMNS, user_profiles

PARAMS = {"objective": "binary", **PROFILE_MODEL_PARAMS}
ROUNDS = PROFILE_MODEL_ROUNDS


@dataclass
class ChurnModel:
    booster: lgb.Booster
    horizon_days: int
    test_auc: float  # forward in time, on the later snapshot
    baseline_auc: float  # days since the last purchase, same rows
    test_rows: int
    churn_rate: float  # share of test rows that did not buy within the horizon
    tested_at: pd.Timestamp  # the later snapshot: its users' next `horizon_days` are the test outcome
    test_labels: pd.Series  # index user_id: 1 = no purchase in the window (what an oracle is scored on too)

    def risk(self, profiles: pd.DataFrame) -> pd.Series:
        return pd.Series(self.booster.predict(profiles[list(PROFILE_COLUMNS)]), index=profiles.index, name="churn_risk")


def bought_within(events: pd.DataFrame, start: pd.Timestamp, days: int) -> pd.Index:
    """Users with a purchase in [start, start + days)."""
    window = (events["event_type"] == "purchase") & events["event_time"].between(
        start, start + pd.Timedelta(days=days), inclusive="left"
    )
    return pd.Index(events.loc[window, "user_id"].unique())


def labelled_snapshot(
    events: pd.DataFrame, items: pd.DataFrame, at: pd.Timestamp, horizon: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Profiles at `at` and each user's churn label (1 = no purchase in the `horizon` days after `at`)."""
    profiles = user_profiles(events, items, at)
    churned = (~profiles.index.isin(bought_within(events, at, horizon))).astype(int)
    return profiles, churned


def fit_churn(events: pd.DataFrame, items: pd.DataFrame, as_of: pd.Timestamp, horizon: int = 30) -> ChurnModel:
    """Fit and judge the churn model from events before `as_of`; raises ValueError when the log is too short."""
    earlier, later = forward_snapshots(events, as_of, horizon, "churn")
    train_x, train_y = labelled_snapshot(events, items, earlier, horizon)
    test_x, test_y = labelled_snapshot(events, items, later, horizon)
    for name, labels in (("earlier", train_y), ("later", test_y)):
        if labels.size == 0 or labels.min() == labels.max():
            raise ValueError(f"the {name} snapshot has {labels.size} users and one outcome: churn cannot be learnt")
    booster = lgb.train(PARAMS, lgb.Dataset(train_x[list(PROFILE_COLUMNS)], train_y), num_boost_round=ROUNDS)
    test_auc = auc(test_y, booster.predict(test_x[list(PROFILE_COLUMNS)]))
    baseline = auc(test_y, test_x["recency_days"].fillna(np.inf).clip(upper=1e6).to_numpy())
    final = lgb.train(PARAMS, lgb.Dataset(test_x[list(PROFILE_COLUMNS)], test_y), num_boost_round=ROUNDS)
    labels = pd.Series(test_y, index=test_x.index, name="churned")
    return ChurnModel(final, horizon, test_auc, baseline, int(test_y.size), float(test_y.mean()), later, labels)
