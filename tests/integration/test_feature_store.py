"""The real Feast store on both online backends: apply, materialize, online read, point-in-time joins."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pandas as pd
import pytest

from features import repo
from features.build import USER_FEATURES
from siyu.settings import Settings
from tests.conftest import REDIS_URL, make_settings, require_redis
from tiers.history import TIER_FEATURES
from training.pipeline import build_features

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def built_store(request: pytest.FixtureRequest, small_world: Settings, tmp_path) -> Iterator[Settings]:
    """The small world copied, featurised and materialised into the online store under test."""
    if request.param == "redis":
        require_redis()
    settings = make_settings(tmp_path, online_store=REDIS_URL if request.param == "redis" else "sqlite")
    shutil.copytree(small_world.data_dir, settings.data_dir)
    build_features(settings)
    repo.materialize(settings)
    yield settings
    repo.feature_store(settings).teardown()


def _latest(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return frame.sort_values("event_timestamp").groupby(key).last()


def test_online_read_returns_each_users_newest_snapshot(built_store: Settings) -> None:
    snapshots = pd.read_parquet(repo.source_paths(built_store)[repo.USER_VIEW])
    latest = _latest(snapshots, "user_id")
    sample = latest.sample(20, random_state=0)
    store = repo.feature_store(built_store)
    refs = [f"{repo.USER_VIEW}:{f}" for f in USER_FEATURES]
    online = store.get_online_features(features=refs, entity_rows=[{"user_id": u} for u in sample.index]).to_df()
    online = online.set_index("user_id").loc[sample.index]
    for feature in ("purchases_30d", "monetary_90d", "recency_days", "views_7d"):
        pd.testing.assert_series_equal(
            online[feature].astype(float), sample[feature].astype(float), check_names=False, rtol=1e-6
        )
    unknown = store.get_online_features(features=refs, entity_rows=[{"user_id": "no-such-user"}]).to_dict()
    assert all(unknown[f] == [None] for f in USER_FEATURES)


def test_online_store_backend_is_the_configured_one(built_store: Settings) -> None:
    store = repo.feature_store(built_store)
    expected = "sqlite" if built_store.online_store == "sqlite" else "redis"
    assert store.config.online_store.type == expected
    if expected == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        assert any(built_store.feast_project.encode() in key for key in client.scan_iter(count=1000))


def test_point_in_time_join_never_sees_the_future(built_store: Settings) -> None:
    """A row just before a snapshot gets the previous snapshot; a feature from after the label time never leaks."""
    snapshots = pd.read_parquet(repo.source_paths(built_store)[repo.USER_VIEW])
    busy = snapshots.groupby("user_id")["purchases_7d"].max().idxmax()
    history = snapshots[snapshots["user_id"] == busy].sort_values("event_timestamp").reset_index(drop=True)
    changed = history.index[history["purchases_7d"].diff().fillna(0) != 0]
    assert len(changed), "the busiest user's purchases_7d must change at least once"
    i = int(changed[0])
    stamp = history.loc[i, "event_timestamp"]
    entity = pd.DataFrame({"user_id": [busy, busy], "event_timestamp": [stamp - pd.Timedelta(seconds=1), stamp]})
    store = repo.feature_store(built_store)
    joined = store.get_historical_features(entity_df=entity, features=[f"{repo.USER_VIEW}:purchases_7d"]).to_df()
    joined = joined.sort_values("event_timestamp").reset_index(drop=True)
    assert joined.loc[0, "purchases_7d"] == history.loc[i - 1, "purchases_7d"]
    assert joined.loc[1, "purchases_7d"] == history.loc[i, "purchases_7d"]


def test_tiers_are_joined_as_of_each_row_and_served_newest(built_store: Settings) -> None:
    """A training row sees the tier its user had at the time; the online store serves the newest snapshot."""
    tiers = pd.read_parquet(repo.source_paths(built_store)[repo.USER_TIER_VIEW])
    assert tiers["event_timestamp"].nunique() >= 2  # a schedule of snapshots, not one table
    moved = tiers.sort_values("event_timestamp").groupby("user_id")["value_score"].agg(lambda s: s.diff().abs().max())
    user = moved.idxmax()
    history = tiers[tiers["user_id"] == user].sort_values("event_timestamp").reset_index(drop=True)
    i = int(history["value_score"].diff().abs().idxmax())
    stamp = history.loc[i, "event_timestamp"]
    entity = pd.DataFrame({"user_id": [user, user], "event_timestamp": [stamp - pd.Timedelta(seconds=1), stamp]})
    store = repo.feature_store(built_store)
    refs = [f"{repo.USER_TIER_VIEW}:{f}" for f in TIER_FEATURES]
    joined = store.get_historical_features(entity_df=entity, features=refs).to_df().sort_values("event_timestamp")
    assert joined["value_score"].tolist() == pytest.approx(history.loc[[i - 1, i], "value_score"].tolist(), rel=1e-6)
    online = store.get_online_features(features=refs, entity_rows=[{"user_id": user}]).to_dict()
    assert online["value_score"][0] == pytest.approx(history["value_score"].iloc[-1], rel=1e-6)
    assert online["value_tier_rank"][0] in (0.0, 1.0, 2.0)
