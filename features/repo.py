"""The Feast feature repo, defined in code: entities, file sources and feature views.

No YAML to hand-edit: `feature_store(settings)` builds the RepoConfig from siyu's settings,
so `SIYU_ONLINE_STORE=redis://...` moves the online store to Redis with no other change.
The offline store is Feast's file store over the Parquet snapshots written by `write_sources`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, RepoConfig, ValueType
from feast.types import Float32

from features.build import ITEM_FEATURES, USER_CATEGORY_FEATURES, USER_FEATURES, FeatureTables
from features.redis_online import TYPE as FAIL_FAST_REDIS
from siyu.data.store import write_table_atomic
from siyu.settings import Settings
from tiers.history import TIER_FEATURES

USER_VIEW = "user_features"
ITEM_VIEW = "item_features"
USER_CATEGORY_VIEW = "user_category_features"
USER_TIER_VIEW = "user_tier_features"
# Push sources: /events folds new events into these views' online rows at once (features/activity.py).
PUSH_SOURCES = {USER_VIEW: "user_activity", USER_CATEGORY_VIEW: "user_category_activity"}
SNAPSHOT_TTL = timedelta(days=120)  # older snapshots count as "no data" at read time

user_entity = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING, description="unified user id")
item_entity = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING, description="SKU")
category_entity = Entity(
    name="category", join_keys=["category_id"], value_type=ValueType.STRING, description="item category"
)


def source_paths(settings: Settings) -> dict[str, Path]:
    names = (USER_VIEW, ITEM_VIEW, USER_CATEGORY_VIEW, USER_TIER_VIEW)
    return {name: settings.features_dir / f"{name}.parquet" for name in names}


def item_meta_path(settings: Settings) -> Path:
    """Static item attributes (category) that training joins on and serving keeps in memory."""
    return settings.features_dir / "item_meta.parquet"


def feature_views(settings: Settings) -> list[FeatureView]:
    paths = source_paths(settings)

    def view(name: str, entities: list[Entity], features: tuple[str, ...], doc: str) -> FeatureView:
        source = FileSource(name=f"{name}_source", path=str(paths[name].resolve()), timestamp_field="event_timestamp")
        if name in PUSH_SOURCES:  # training and materialisation still read the snapshots (its batch source)
            source = PushSource(name=PUSH_SOURCES[name], batch_source=source)
        return FeatureView(
            name=name,
            entities=entities,
            ttl=SNAPSHOT_TTL,
            schema=[Field(name=f, dtype=Float32) for f in features],
            source=source,
            online=True,
            description=doc,
        )

    return [
        view(USER_VIEW, [user_entity], USER_FEATURES, "RFM, activity and channel mix, daily point-in-time snapshots"),
        view(ITEM_VIEW, [item_entity], ITEM_FEATURES, "price, stock, turnover and popularity, daily snapshots"),
        view(
            USER_CATEGORY_VIEW,
            [user_entity, category_entity],
            USER_CATEGORY_FEATURES,
            "user x category engagement over the last 30 days (rows where it changes)",
        ),
        view(
            USER_TIER_VIEW,
            [user_entity],
            TIER_FEATURES,
            "value tier, lifecycle, churn risk and lifetime value, snapshots every SIYU_TIER_EVERY_DAYS days",
        ),
    ]


def repo_config(settings: Settings, fail_fast: bool = False) -> RepoConfig:
    """Feast's configuration; `fail_fast` (serving) gives Redis reads short timeouts and no retries."""
    feast_dir = settings.feast_dir.resolve()
    if settings.online_store == "sqlite":
        online = {"type": "sqlite", "path": str(feast_dir / "online.db")}
    elif fail_fast:
        online = {
            "type": FAIL_FAST_REDIS,
            "connection_string": settings.redis_connection_string,
            "timeout_seconds": settings.online_timeout_ms / 1000,
        }
    else:
        online = {"type": "redis", "connection_string": settings.redis_connection_string}
    return RepoConfig(
        project=settings.feast_project,
        provider="local",
        registry=str(feast_dir / "registry.db"),
        online_store=online,
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=feast_dir,
    )


def feature_store(settings: Settings, fail_fast: bool = False) -> FeatureStore:
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(settings, fail_fast))


def write_sources(tables: FeatureTables, settings: Settings) -> None:
    """Write the snapshot tables the file sources point at (atomically: readers never see half a file)."""
    paths = source_paths(settings)
    written = (
        (USER_VIEW, tables.user),
        (ITEM_VIEW, tables.item),
        (USER_CATEGORY_VIEW, tables.user_category),
        (USER_TIER_VIEW, tables.user_tiers),
    )
    for name, frame in written:
        write_table_atomic(pa.Table.from_pandas(frame, preserve_index=False), paths[name])
    write_table_atomic(pa.Table.from_pandas(tables.item_meta, preserve_index=False), item_meta_path(settings))


def apply(settings: Settings) -> FeatureStore:
    store = feature_store(settings)
    store.apply([user_entity, item_entity, category_entity, *feature_views(settings)])
    return store


def materialize(settings: Settings, end: datetime | None = None) -> tuple[FeatureStore, datetime]:
    """Load the latest snapshot per entity (up to `end`, default: the newest snapshot) into the online store."""
    store = feature_store(settings)
    if end is None:
        newest = pd.read_parquet(source_paths(settings)[USER_VIEW], columns=["event_timestamp"])[
            "event_timestamp"
        ].max()
        end = newest.to_pydatetime() + timedelta(seconds=1)
    start = end - SNAPSHOT_TTL
    store.materialize(start_date=start, end_date=end)
    return store, end
