"""Tier snapshots on a schedule: the history a point-in-time join reads, so a training row sees the
tier, churn risk and lifetime value its user had at the time, never today's.

Each snapshot is a full `tier_table` as of its date (profiles, thresholds, churn and LTV models fitted
on events before that date only). `siyu features build` writes them as the Feast view
`user_tier_features`; materialisation puts the newest in the online store for serving.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiers.build import tier_table
from tiers.segments import LIFECYCLE, VALUE_TIERS, TierConfig

# Ordinal codes, Float32 as every Feast feature here: value_tier_rank 2 = core, 1 = potential, 0 = silent;
# lifecycle_rank 0 = new, 1 = old, 2 = dormant.
TIER_FEATURES = ("value_score", "value_tier_rank", "lifecycle_rank", "churn_risk", "ltv_orders", "ltv_spend")
_VALUE_RANK = {tier: len(VALUE_TIERS) - 1 - i for i, tier in enumerate(VALUE_TIERS)}
_LIFECYCLE_RANK = {stage: i for i, stage in enumerate(LIFECYCLE)}


def snapshot_dates(events: pd.DataFrame, every_days: int) -> pd.DatetimeIndex:
    """Midnights every `every_days` days after the log's first day, and the day after its last event."""
    first = events["event_time"].min().floor("D")
    end = events["event_time"].max().floor("D") + pd.Timedelta(days=1)
    scheduled = pd.date_range(first + pd.Timedelta(days=every_days), end, freq=f"{every_days}D")
    return scheduled.union(pd.DatetimeIndex([end]))


def tier_history(
    events: pd.DataFrame,
    items: pd.DataFrame,
    every_days: int = 7,
    horizon: int = 30,
    config: TierConfig | None = None,
) -> pd.DataFrame:
    """user_id, event_timestamp and TIER_FEATURES for every user at every snapshot date."""
    config = config or TierConfig()
    frames = []
    for as_of in snapshot_dates(events, every_days):
        tiers = tier_table(events, items, as_of, horizon, config).tiers
        frames.append(
            pd.DataFrame(
                {
                    "user_id": tiers.index.to_numpy(),
                    "event_timestamp": as_of,
                    "value_score": tiers["value_score"].to_numpy(dtype=np.float32),
                    "value_tier_rank": tiers["value_tier"].map(_VALUE_RANK).to_numpy(dtype=np.float32),
                    "lifecycle_rank": tiers["lifecycle"].map(_LIFECYCLE_RANK).to_numpy(dtype=np.float32),
                    "churn_risk": tiers["churn_risk"].to_numpy(dtype=np.float32),
                    "ltv_orders": tiers["ltv_orders"].to_numpy(dtype=np.float32),
                    "ltv_spend": tiers["ltv_spend"].to_numpy(dtype=np.float32),
                }
            )
        )
    columns = ["user_id", "event_timestamp", *TIER_FEATURES]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
