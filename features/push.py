"""The push path: newly stored events counted in their users' online feature rows through Feast push sources.

For the users (and user x category pairs) in a batch, the rows the online store holds are read in one
online read per view, the events folded in (features/activity.py), and the new rows pushed
(`PushMode.ONLINE`): the next online read, by any worker, sees them. Training is untouched: it reads
the snapshots, which the next materialisation recomputes from the log, events included.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode
from feast.online_response import TIMESTAMP_POSTFIX

from features.activity import AS_OF, fold_category_rows, fold_user_rows
from features.build import USER_CATEGORY_FEATURES, USER_FEATURES
from features.repo import PUSH_SOURCES, USER_CATEGORY_VIEW, USER_VIEW


@dataclass(frozen=True)
class Pushed:
    users: int  # user rows written
    categories: int  # user x category rows written


def push_activity(store: FeatureStore, events: pd.DataFrame) -> Pushed:
    """Fold `events` (user_id, category_id, event_time, event_type, quantity, unit_price, channel) into the
    online rows of their users and push them. Raises what the online store or the registry raises."""
    user_rows = fold_user_rows(held_rows(store, USER_VIEW, USER_FEATURES, events[["user_id"]]), events)
    pairs = events.loc[events["category_id"].notna(), ["user_id", "category_id"]]
    category_rows = fold_category_rows(held_rows(store, USER_CATEGORY_VIEW, USER_CATEGORY_FEATURES, pairs), events)
    for view, rows, features in (
        (USER_VIEW, user_rows, USER_FEATURES),
        (USER_CATEGORY_VIEW, category_rows, USER_CATEGORY_FEATURES),
    ):
        if not rows.empty:
            store.push(PUSH_SOURCES[view], rows.astype(dict.fromkeys(features, "float32")), to=PushMode.ONLINE)
    return Pushed(len(user_rows), len(category_rows))


def missing_push_sources(store: FeatureStore) -> list[str]:
    """The push sources the store's registry does not have (it was applied before they were defined)."""
    have = {view.stream_source.name for view in store.list_feature_views() if view.stream_source is not None}
    return sorted(set(PUSH_SOURCES.values()) - have)


def held_rows(store: FeatureStore, view: str, features: tuple[str, ...], keys: pd.DataFrame) -> pd.DataFrame:
    """The rows the online store holds for `keys` (distinct), with their timestamps; absent rows left out."""
    keys = keys.drop_duplicates().reset_index(drop=True)
    columns = [*keys.columns, AS_OF, *features]
    if keys.empty:
        return pd.DataFrame(columns=columns)
    found = store.get_online_features(
        features=[f"{view}:{f}" for f in features], entity_rows=keys.to_dict("records")
    ).to_dict(include_event_timestamps=True)
    rows = keys.assign(**{f: pd.to_numeric(pd.Series(found[f]), errors="coerce") for f in features})
    stamps = pd.Series(found[f"{features[0]}{TIMESTAMP_POSTFIX}"], dtype="int64")
    rows[AS_OF] = pd.to_datetime(stamps, unit="s", utc=True)
    held = pd.Series([any(found[f][i] is not None for f in features) for i in range(len(keys))])
    return rows.loc[held.to_numpy(), columns].reset_index(drop=True)
