"""Lifetime value: each user's expected orders and spend over the next `horizon` days.

Judged like churn (`tiers.churn`), forward in time: LightGBM regressors (Poisson for orders, Tweedie
for spend, which is zero for most users and long-tailed for the rest) fit on the snapshot two
horizons back and what followed it, and are scored on the next snapshot, whose outcome window ends
at `as_of`. On the same users the report scores the simple baseline ("the last `horizon` days
repeat"), and the benchmark adds BG/NBD + Gamma-Gamma (`tiers.clv_probabilistic`) when pymc-marketing
is installed. The kept model is refitted on the later snapshot.

Figures per method: Spearman rank correlation with the realised spend (who to invest in), the share
of realised spend held by the predicted top decile, mean absolute error per user, and predicted over
realised total (is the budget right).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from tiers import clv_probabilistic
from tiers.forward import PROFILE_MODEL_PARAMS, PROFILE_MODEL_ROUNDS, forward_snapshots
from tiers.profile import PROFILE_COLUMNS, user_profiles

LTV_COLUMNS = ("ltv_orders", "ltv_spend")
OBJECTIVES = {"ltv_orders": {"objective": "poisson"}, "ltv_spend": {"objective": "tweedie"}}


@dataclass
class ValueModel:
    """The LTV regressors refitted on the freshest fully observed snapshot, and how each method did."""

    boosters: dict[str, lgb.Booster]  # LTV_COLUMNS -> booster
    horizon_days: int
    test_users: int
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> value_scores on the test users

    def predict(self, profiles: pd.DataFrame) -> pd.DataFrame:
        x = profiles[list(PROFILE_COLUMNS)]
        return pd.DataFrame({name: b.predict(x) for name, b in self.boosters.items()}, index=profiles.index)


def realised_value(events: pd.DataFrame, users: pd.Index, start: pd.Timestamp, days: int) -> pd.DataFrame:
    """Orders (purchase sessions) and spend of each of `users` in [start, start + days)."""
    bought = events[
        (events["event_type"] == "purchase")
        & events["event_time"].between(start, start + pd.Timedelta(days=days), inclusive="left")
    ]
    spend = (bought["quantity"] * bought["unit_price"].fillna(0.0)).groupby(bought["user_id"]).sum()
    orders = bought.groupby("user_id")["session_id"].nunique()
    out = pd.DataFrame({"ltv_orders": orders, "ltv_spend": spend}).reindex(users, fill_value=0.0)
    return out.astype(float)


def repeat_last_window(events: pd.DataFrame, users: pd.Index, at: pd.Timestamp, days: int) -> pd.DataFrame:
    """The baseline: each user's next `days` repeat their last `days`."""
    return realised_value(events, users, at - pd.Timedelta(days=days), days)


def value_scores(predicted_spend: np.ndarray, realised_spend: np.ndarray) -> dict[str, float]:
    """How well predicted spend ranks and sizes realised spend (see the module docstring)."""
    predicted, realised = np.asarray(predicted_spend, dtype=float), np.asarray(realised_spend, dtype=float)
    top = np.argsort(-predicted, kind="stable")[: max(1, predicted.size // 10)]
    total = realised.sum()
    return {
        "spearman": float(spearmanr(predicted, realised).statistic) if predicted.size > 1 else float("nan"),
        "top_decile_share": float(realised[top].sum() / total) if total > 0 else float("nan"),
        "mae": float(np.mean(np.abs(predicted - realised))),
        "total_ratio": float(predicted.sum() / total) if total > 0 else float("nan"),
    }


def fit_value(
    events: pd.DataFrame,
    items: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon: int = 30,
    compare_probabilistic: bool = False,
) -> ValueModel:
    """Fit and judge the LTV regressors from events before `as_of`; ValueError when the log is too short
    or nobody bought in a window. `compare_probabilistic` also scores BG/NBD + Gamma-Gamma (when installed)."""
    earlier, later = forward_snapshots(events, as_of, horizon, "lifetime value")
    train_x = user_profiles(events, items, earlier)
    test_x = user_profiles(events, items, later)
    train_y = realised_value(events, train_x.index, earlier, horizon)
    test_y = realised_value(events, test_x.index, later, horizon)
    for name, outcome in (("earlier", train_y), ("later", test_y)):
        if not (outcome["ltv_spend"] > 0).any():
            raise ValueError(f"nobody bought in the {name} snapshot's {horizon} days: lifetime value cannot be learnt")
    judged = ValueModel(_fit(train_x, train_y), horizon, 0).predict(test_x)
    baseline = repeat_last_window(events, test_x.index, later, horizon)
    realised = test_y["ltv_spend"].to_numpy()
    scores = {
        "lightgbm": value_scores(judged["ltv_spend"].to_numpy(), realised),
        "repeat_last_window": value_scores(baseline["ltv_spend"].to_numpy(), realised),
    }
    if compare_probabilistic and clv_probabilistic.available():
        probabilistic = clv_probabilistic.expected_spend(events, test_x.index, later, horizon)
        scores["bg_nbd_gamma_gamma"] = value_scores(probabilistic, realised)
    return ValueModel(_fit(test_x, test_y), horizon, len(test_x), scores)


def _fit(profiles: pd.DataFrame, outcome: pd.DataFrame) -> dict[str, lgb.Booster]:
    x = profiles[list(PROFILE_COLUMNS)]
    return {
        name: lgb.train(
            PROFILE_MODEL_PARAMS | OBJECTIVES[name], lgb.Dataset(x, outcome[name]), num_boost_round=PROFILE_MODEL_ROUNDS
        )
        for name in LTV_COLUMNS
    }
