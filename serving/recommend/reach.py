"""Batch reach lists: recommendations for every user of a tier, with when and where to reach them.

The source material's PCT (right people, right content, right time) for WeCom/SMS campaigns: the
people are a value tier (or everyone), the content is what /recommend would show them (the same
pipeline, rules and tier playbook, in-process), and the time and place are the hour of day they
are most often active (in the brand's timezone) and the channel they use most. The list is a file
a campaign tool picks up; nothing is sent from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from features.repo import USER_TIER_VIEW, source_paths
from serving.recommend.ranker import Ranker
from serving.recommend.rules import Rules
from serving.recommend.tier_strategy import VALUE_TIERS
from siyu.data import schema
from siyu.data.identity import attach_user_ids
from siyu.data.store import read_table
from siyu.settings import Settings

COLUMNS = ["user_id", "tier", "rank", "item_id", "score", "reason", "best_hour", "channel"]


class ReachListError(ValueError):
    """Nothing to build a list from (no tiers yet, no users in the tier)."""


@dataclass
class ReachList:
    rows: pd.DataFrame  # COLUMNS
    users: int
    seconds: float

    @property
    def users_per_second(self) -> float:
        return self.users / self.seconds if self.seconds > 0 else 0.0


def users_in_tier(settings: Settings, tier: str | None) -> pd.DataFrame:
    """(user_id, tier) from each user's newest tier snapshot; `tier` None keeps everyone with one."""
    path = source_paths(settings)[USER_TIER_VIEW]
    if not path.exists():
        raise ReachListError(f"no tier snapshots at {path}: run `siyu features build` first")
    snapshots = pd.read_parquet(path, columns=["user_id", "event_timestamp", "value_tier_rank"])
    newest = snapshots.sort_values("event_timestamp").groupby("user_id", as_index=False).last()
    newest["tier"] = newest["value_tier_rank"].round().map(VALUE_TIERS)
    chosen = newest[newest["tier"] == tier] if tier is not None else newest[newest["tier"].notna()]
    if chosen.empty:
        raise ReachListError(f"no users in tier {tier!r} in the newest tier snapshots")
    return chosen[["user_id", "tier"]].sort_values("user_id", ignore_index=True)


def contact_habits(settings: Settings) -> pd.DataFrame:
    """Per user: the hour of day (SIYU_TIMEZONE) they are most often active, and their most used channel."""
    events = attach_user_ids(
        read_table(settings.events_dir, schema.EVENT_SCHEMA),
        read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA),
    )
    hour = events["event_time"].dt.tz_convert(settings.timezone).dt.hour
    best_hour = events.assign(hour=hour).groupby(["user_id", "hour"]).size().reset_index(name="n")
    best_hour = best_hour.sort_values(["user_id", "n", "hour"], ascending=[True, False, True]).drop_duplicates(
        "user_id"
    )
    channel = events.groupby(["user_id", "channel"]).size().reset_index(name="n")
    channel = channel.sort_values(["user_id", "n", "channel"], ascending=[True, False, True]).drop_duplicates("user_id")
    return (
        best_hour[["user_id", "hour"]]
        .rename(columns={"hour": "best_hour"})
        .merge(channel[["user_id", "channel"]], on="user_id", how="outer")
    )


def build_reach_list(
    settings: Settings,
    tier: str | None,
    k: int,
    rules: Rules | None = None,
    limit: int | None = None,
    on_user: Callable[[], None] | None = None,
) -> ReachList:
    """Recommendations for every user of `tier` (at most `limit` users), best first per user."""
    users = users_in_tier(settings, tier)
    if limit is not None:
        users = users.head(limit)
    habits = contact_habits(settings).set_index("user_id")
    ranker = Ranker(settings)
    rows: list[tuple] = []
    started = time.perf_counter()
    try:
        for user_id, user_tier in zip(users["user_id"], users["tier"], strict=True):
            result = ranker.recommend(user_id, k, rules=rules)
            hour = habits["best_hour"].get(user_id)
            channel = habits["channel"].get(user_id)
            for rank, item in enumerate(result.items, start=1):
                rows.append((user_id, user_tier, rank, item.item_id, item.score, item.reason, hour, channel))
            if on_user is not None:
                on_user()
    finally:
        ranker.close()
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"best_hour": "Int64"})
    return ReachList(frame, len(users), time.perf_counter() - started)
