"""Serving's own read of the SQLite online store returns what Feast's `online_read` returns."""

from __future__ import annotations

import pandas as pd
from feast.infra.online_stores.helpers import get_online_store_from_config

from features import repo
from features.build import USER_CATEGORY_FEATURES, USER_FEATURES
from features.online_rows import entity_keys
from features.repo import USER_CATEGORY_VIEW, USER_VIEW
from features.sqlite_rows import read_sqlite


def test_reads_match_feasts_for_stored_and_missing_keys(trained_system) -> None:
    settings, _ = trained_system
    store = repo.feature_store(settings)
    users = pd.read_parquet(settings.features_dir / "user_features.parquet")["user_id"].drop_duplicates()
    categories = pd.read_parquet(repo.item_meta_path(settings))["category_id"].drop_duplicates().tolist()
    user_keys = [{"user_id": u} for u in users.head(25)] + [{"user_id": "no-such-user"}]
    category_keys = [{"user_id": u, "category_id": c} for u in users.head(5) for c in [*categories, "no-such"]]
    online = get_online_store_from_config(store.config.online_store)
    stored = 0
    for view, keys, features in (
        (USER_VIEW, user_keys, USER_FEATURES),
        (USER_CATEGORY_VIEW, category_keys, USER_CATEGORY_FEATURES),
    ):
        ours = read_sqlite(online, store.config, store.get_feature_view(view), keys, features)
        theirs = online.online_read(store.config, store.get_feature_view(view), entity_keys(keys), list(features))
        assert len(ours) == len(theirs) == len(keys)
        for (our_ts, our_values), (their_ts, their_values) in zip(ours, theirs, strict=True):
            assert our_ts == their_ts
            if their_values is None:
                assert our_values is None
                continue
            stored += 1
            assert our_values == {name: their_values[name] for name in features if name in their_values}
    assert stored > 25  # the comparison covered stored rows, not only misses
    assert ours[-1] == (None, None)  # an unknown category has no row
