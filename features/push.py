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

from features.activity import AS_OF, fold_category_rows, fold_user_rows
from features.build import USER_CATEGORY_FEATURES, USER_FEATURES
from features.online_rows import OnlineRows
from features.repo import PUSH_SOURCES, USER_CATEGORY_VIEW, USER_VIEW


@dataclass(frozen=True)
class Pushed:
    users: int  # user rows written
    categories: int  # user x category rows written


def push_activity(store: FeatureStore, online: OnlineRows, events: pd.DataFrame) -> Pushed:
    """Fold `events` (user_id, category_id, event_time, event_type, quantity, unit_price, channel) into the
    online rows of their users (read through `online`) and push them. Raises what the store raises."""
    user_rows = fold_user_rows(held_rows(online, USER_VIEW, USER_FEATURES, events[["user_id"]]), events)
    pairs = events.loc[events["category_id"].notna(), ["user_id", "category_id"]]
    category_rows = fold_category_rows(held_rows(online, USER_CATEGORY_VIEW, USER_CATEGORY_FEATURES, pairs), events)
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


def held_rows(online: OnlineRows, view: str, features: tuple[str, ...], keys: pd.DataFrame) -> pd.DataFrame:
    """The rows the online store holds for `keys` (distinct), with their timestamps; absent rows left out."""
    keys = keys.drop_duplicates().reset_index(drop=True)
    found = online.read(view, keys.to_dict("records"), features)
    held = [(key, row) for key, row in zip(keys.to_dict("records"), found, strict=True) if row is not None]
    frame = pd.DataFrame(
        [{**key, AS_OF: row.as_of, **row.values} for key, row in held], columns=[*keys.columns, AS_OF, *features]
    )
    frame[AS_OF] = pd.to_datetime(frame[AS_OF], utc=True)  # SQLite answers naive UTC, Redis aware
    frame[list(features)] = frame[list(features)].astype(float)  # None -> NaN
    return frame
