"""Behavioural tests of the trained conversion model and its training set (directional, leakage, fallbacks)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from features import repo
from serving.recommend.ranker import Ranker
from siyu.data import schema
from siyu.data.identity import attach_user_ids
from siyu.data.store import read_table
from siyu.tracking import CHAMPION, use_registry
from training.dataset import PRICE_FEATURES, build_training_set, labelled_impressions

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def training_set(trained_system):
    settings, _ = trained_system
    return build_training_set(settings, repo.feature_store(settings), max_rows=5000)


def _champion(settings):
    use_registry(settings)
    return mlflow.lightgbm.load_model(f"models:/{settings.conversion_model_name}@{CHAMPION}")


def test_higher_price_never_raises_predicted_conversion(trained_system, training_set) -> None:
    settings, _ = trained_system
    booster = _champion(settings)
    rows = training_set.holdout.head(2000)
    features = booster.feature_name()
    base = booster.predict(rows[features])
    for factor in (1.05, 1.3, 2.0):
        dearer = rows.copy()
        for column in PRICE_FEATURES:
            dearer[column] = dearer[column] * factor
        assert (booster.predict(dearer[features]) <= base + 1e-12).all()
    cheaper = rows.copy()
    for column in PRICE_FEATURES:
        cheaper[column] = cheaper[column] * 0.5
    assert booster.predict(cheaper[features]).mean() > base.mean(), "price must matter, not just be flat"


def test_training_rows_only_see_snapshots_from_before_the_impression(trained_system, training_set) -> None:
    settings, _ = trained_system
    snapshots = pd.read_parquet(repo.source_paths(settings)[repo.USER_VIEW])
    frame = training_set.frame.sample(500, random_state=1)
    ns = "datetime64[ns, UTC]"
    left = frame.sort_values("event_timestamp")[["user_id", "event_timestamp"]].astype({"event_timestamp": ns})
    right = snapshots.sort_values("event_timestamp")[["user_id", "event_timestamp", "purchases_7d", "views_7d"]]
    expected = pd.merge_asof(
        left,
        right.astype({"event_timestamp": ns}),
        on="event_timestamp",
        by="user_id",
        allow_exact_matches=True,
    )
    got = frame.sort_values("event_timestamp")
    np.testing.assert_array_equal(
        got["purchases_7d"].fillna(-1).to_numpy(), expected["purchases_7d"].fillna(-1).to_numpy()
    )
    # The label's own purchase happens after the view, so the snapshot in the row cannot count it:
    # every snapshot used is stamped at or before the impression.
    used = got["event_timestamp"].dt.floor("D")
    assert (used <= got["event_timestamp"]).all()
    assert (training_set.train["event_timestamp"] < training_set.cutoff).all()
    assert (training_set.holdout["event_timestamp"] >= training_set.cutoff).all()


def test_every_impression_is_kept_even_without_history(trained_system, training_set) -> None:
    """New users' first sessions have no snapshot yet; they must stay in the set with missing features."""
    settings, _ = trained_system
    full = build_training_set(settings, repo.feature_store(settings), max_rows=None)
    events = attach_user_ids(
        read_table(settings.events_dir, schema.EVENT_SCHEMA),
        read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA),
    )
    assert len(full.frame) == len(labelled_impressions(events))
    no_history = full.frame["recency_days"].isna()
    assert no_history.any() and (~no_history).any()
    assert full.frame.loc[no_history, "stock"].notna().all(), "item features must survive a missing user row"


def test_online_store_outage_degrades_to_popular_instead_of_failing(trained_system) -> None:
    settings, _ = trained_system
    broken = settings.model_copy(update={"online_store": "redis://127.0.0.1:1/0"})
    ranker = Ranker(broken)
    try:
        result = ranker.recommend("any-user", 5)
    finally:
        ranker.close()
    assert result.degraded and result.fallback == "popular" and len(result.items) == 5
