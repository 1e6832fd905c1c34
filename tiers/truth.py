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
from siyu.settings import Settings

NEW_DAYS = 14  # the world's new-user period (see siyu.world.simulate.expected_sessions)


def true_lifecycle(settings: Settings, user_ids: pd.Index, as_of: pd.Timestamp) -> pd.Series | None:
    """Each unified user's true stage on the day before `as_of` (None when the data has no truth)."""
    truth_dir = settings.truth_dir
    if not (truth_dir / "users.parquet").exists():
        return None
    world = json.loads(settings.truth_world_path.read_text())
    day = (as_of.tz_convert(None).normalize() - pd.Timestamp(world["start"])).days - 1
    users = pd.read_parquet(truth_dir / "users.parquet", columns=["user_id", "signup_day", "dormant_day", "churn_day"])
    keys = pd.read_parquet(settings.truth_identity_path)
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    owner = identity.merge(keys, on=["user_key_type", "user_key"]).drop_duplicates("user_id")
    true_id = owner.set_index("user_id")["true_user_id"].reindex(user_ids)
    stage = users.set_index("user_id").reindex(true_id.to_numpy())
    label = np.select(
        [day < stage["signup_day"] + NEW_DAYS, day < stage["dormant_day"]], ["new", "old"], default="dormant"
    )
    return pd.Series(np.where(stage["signup_day"].isna(), None, label), index=user_ids, name="true_lifecycle")


def lifecycle_agreement(predicted: pd.Series, truth: pd.Series) -> dict[str, float]:
    """Accuracy, and recall and precision of each stage, over users with a known true stage."""
    both = pd.concat([predicted.rename("ours"), truth.rename("true")], axis=1).dropna()
    out = {"accuracy": float((both["ours"] == both["true"]).mean()), "users": float(len(both))}
    for stage in ("new", "old", "dormant"):
        actual, called = both["true"] == stage, both["ours"] == stage
        out[f"{stage}_recall"] = float((called & actual).sum() / max(actual.sum(), 1))
        out[f"{stage}_precision"] = float((called & actual).sum() / max(called.sum(), 1))
    return out
