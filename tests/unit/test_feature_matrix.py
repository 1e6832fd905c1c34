"""Serving's feature matrix holds, column for column, what training's frame holds for the same impression."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features.build import USER_CATEGORY_FEATURES, USER_FEATURES
from features.online_rows import OnlineRow
from serving.recommend.feature_matrix import CategoryEngagement, candidate_matrix
from serving.recommend.histories import BEHAVIOUR_FEATURES
from tiers.history import TIER_FEATURES
from training.dataset import ITEM_MODEL_FEATURES, MODEL_FEATURES, add_context_features
from training.live_stock import LIVE_STOCK_FEATURES

VALUES = st.sampled_from([0.0, 1.0, 3.5, 20.0, np.nan])


def _training_matrix(items, user, affinity, behaviour, channel, now, features) -> np.ndarray:
    """As training files an impression: item, user and user x category columns, then the context derived."""
    per_category = affinity.reindex(items["category_id"])
    frame = pd.DataFrame(
        {
            **items,
            **{name: np.nan if value is None else value for name, value in user.items()},
            **{name: per_category[name].to_numpy() for name in USER_CATEGORY_FEATURES},
            **behaviour,
            "price_shown": items["price"],
            "channel": channel,
            "event_timestamp": pd.Timestamp(now),
        }
    )
    return add_context_features(frame)[list(features)].to_numpy(dtype=np.float64)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 6),
    data=st.data(),
    channel=st.sampled_from(["app", "mini_program"]),
    hour=st.integers(0, 23),
)
def test_serving_features_equal_training_features(n: int, data, channel: str, hour: int) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    column = lambda: np.asarray(data.draw(st.lists(VALUES, min_size=n, max_size=n)), dtype=float)  # noqa: E731
    items = {name: column() for name in ("price", *ITEM_MODEL_FEATURES)}
    items["category_id"] = rng.choice(np.array(["c1", "c2", "c3"], dtype=object), n)
    user = {name: data.draw(st.one_of(st.none(), VALUES)) for name in (*USER_FEATURES, *TIER_FEATURES)}
    known = data.draw(st.lists(st.sampled_from(["c1", "c2", "c9"]), unique=True))
    affinity = pd.DataFrame({name: rng.integers(0, 5, len(known)).astype(float) for name in USER_CATEGORY_FEATURES})
    affinity.index = known
    affinity = affinity.replace(0.0, np.nan)  # some rows' values were never set
    behaviour = {name: column() for name in (*BEHAVIOUR_FEATURES, *LIVE_STOCK_FEATURES)}
    now = datetime(2026, 3, 1, hour, 30, tzinfo=UTC)
    features = list(rng.permutation(MODEL_FEATURES))  # a champion's own column order

    coded = ["c1", "c2", "c3"]  # the catalogue's categories by code; the store holds rows for `known` ones only
    as_read = {c: {name: None if np.isnan(v) else v for name, v in affinity.loc[c].items()} for c in known}
    rows = [OnlineRow(None, as_read[c]) if c in known else None for c in coded]
    codes = np.array([coded.index(c) for c in items["category_id"]])
    engagement = CategoryEngagement.read(rows).per_candidate(codes)
    served = candidate_matrix(features, items, user, engagement, behaviour, channel, now)

    expected = _training_matrix(items, user, affinity, behaviour, channel, now, features)
    np.testing.assert_array_equal(served, expected)
