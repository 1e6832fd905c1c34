"""BG/NBD + Gamma-Gamma lifetime value (pymc-marketing), the classic probabilistic comparator.

BG/NBD models each buyer's repeat-purchase rate and dropout from (frequency, recency, age) alone;
Gamma-Gamma models the spend per order. Their product is expected spend over the horizon. Users who
never bought before the snapshot have no purchase history to fit, so they are predicted zero, which is
also what the models assume of a customer with no first purchase. pymc-marketing is an optional
extra (`pip install .[clv]`): the comparison runs where it is installed (`make bench` installs it).
"""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pandas as pd


def available() -> bool:
    return importlib.util.find_spec("pymc_marketing") is not None


def expected_spend(events: pd.DataFrame, users: pd.Index, at: pd.Timestamp, horizon: int) -> np.ndarray:
    """Each of `users`' expected spend in the `horizon` days after `at`, from purchases before `at` (MAP fits)."""
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel
    from pymc_marketing.clv.utils import rfm_summary

    for name in ("pymc", "pytensor", "pymc_marketing"):
        logging.getLogger(name).setLevel(logging.ERROR)
    bought = events[(events["event_type"] == "purchase") & (events["event_time"] < at)]
    orders = (
        bought.assign(spend=bought["quantity"] * bought["unit_price"].fillna(0.0))
        .groupby(["user_id", "session_id"], as_index=False)
        .agg(event_time=("event_time", "min"), spend=("spend", "sum"))
    )
    orders["event_time"] = orders["event_time"].dt.tz_localize(None)
    summary = rfm_summary(
        orders,
        customer_id_col="user_id",
        datetime_col="event_time",
        monetary_value_col="spend",
        observation_period_end=at.tz_localize(None),
        time_unit="D",
    )
    purchases = BetaGeoModel(data=summary[["customer_id", "frequency", "recency", "T"]])
    purchases.fit(method="map", progressbar=False)
    expected = purchases.expected_purchases(data=summary, future_t=horizon).mean(("chain", "draw")).to_numpy()
    repeaters = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    per_order = GammaGammaModel(data=repeaters[["customer_id", "monetary_value", "frequency"]])
    per_order.fit(method="map", progressbar=False)
    spend = per_order.expected_customer_spend(data=summary).mean(("chain", "draw")).to_numpy()
    value = pd.Series(expected * spend, index=summary["customer_id"].to_numpy())
    return value.reindex(users, fill_value=0.0).to_numpy(dtype=float)
