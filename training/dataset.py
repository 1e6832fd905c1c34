"""Labelled impressions for the conversion model, joined point-in-time through Feast.

An impression is an online `view`; its label is whether the same session bought the same item
after the view. Features come from `get_historical_features`, which only ever returns the
snapshot stamped at or before the view (snapshots use events strictly before their stamp),
so no row can see its own label. What the user did with the item before, and in the session so far,
comes from the event log itself (`training.impression_history`), and so does their taste for the item's
category over their whole history (`training.taste_traces`), both counted strictly before the view, and
so are the units of the item sold since the day's stock count (`training.live_stock`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from feast import FeatureStore
from feast.errors import FeastObjectNotFoundException

from features.build import ITEM_FEATURES, USER_CATEGORY_FEATURES, USER_FEATURES
from features.repo import ITEM_VIEW, USER_CATEGORY_VIEW, USER_TIER_VIEW, USER_VIEW, item_meta_path
from siyu.data import schema
from siyu.data.identity import attach_user_ids
from siyu.data.store import read_table
from siyu.settings import Settings
from tiers.history import TIER_FEATURES
from training.conversion_baselines import favourites_before
from training.impression_history import HISTORY_FEATURES, UNKNOWN_CATEGORY, history_features
from training.live_stock import (
    LIVE_STOCK_FEATURES,
    epoch_ns,
    live_stock_columns,
    purchases_of,
    stock_count_ns,
    units_sold_before,
)
from training.taste_traces import TASTE_FEATURES, taste_traces

# Item features the ranker does not take from Feast: the price it scores is the one being shown
# (a request-time input), so a stale snapshot price must not compete with it.
ITEM_MODEL_FEATURES = tuple(f for f in ITEM_FEATURES if f not in ("price", "discount_depth"))
CONTEXT_FEATURES = ("price_shown", "price_vs_list", "price_vs_user_avg", "category_view_share_30d", "hour", "is_app")
MODEL_FEATURES = (
    *USER_FEATURES,
    *TIER_FEATURES,
    *ITEM_MODEL_FEATURES,
    *USER_CATEGORY_FEATURES,
    *CONTEXT_FEATURES,
    *HISTORY_FEATURES,
    *TASTE_FEATURES,
    *LIVE_STOCK_FEATURES,
)
# Conversion must never rise with price, other things equal: every feature that grows with the
# shown price is constrained to a non-increasing effect.
PRICE_FEATURES = ("price_shown", "price_vs_list", "price_vs_user_avg")


@dataclass
class TrainingSet:
    frame: pd.DataFrame  # user_id, item_id, session_id, event_timestamp, label, MODEL_FEATURES
    cutoff: pd.Timestamp  # rows at or after it are the time-based holdout

    @property
    def train(self) -> pd.DataFrame:
        return self.frame[self.frame["event_timestamp"] < self.cutoff]

    @property
    def holdout(self) -> pd.DataFrame:
        return self.frame[self.frame["event_timestamp"] >= self.cutoff]


def labelled_impressions(events: pd.DataFrame) -> pd.DataFrame:
    """Online views labelled with 'bought in the same session afterwards'."""
    views = events[(events["event_type"] == "view") & events["item_id"].notna()]
    views = views.drop_duplicates(["session_id", "item_id"])
    purchases = events.loc[events["event_type"] == "purchase", ["session_id", "item_id", "event_time"]]
    first_purchase = purchases.groupby(["session_id", "item_id"], as_index=False)["event_time"].min()
    joined = views.merge(first_purchase, on=["session_id", "item_id"], how="left", suffixes=("", "_purchase"))
    label = (joined["event_time_purchase"] > joined["event_time"]).astype(np.int8)
    return pd.DataFrame(
        {
            "user_id": joined["user_id"],
            "item_id": joined["item_id"],
            "session_id": joined["session_id"],
            "event_timestamp": joined["event_time"],
            "channel": joined["channel"],
            "price_shown": joined["unit_price"],
            "label": label,
        }
    )


CONTEXT_INPUTS = ("price_shown", "list_price", "avg_paid_price_90d", "views_30d", *USER_CATEGORY_FEATURES)


def context_columns(inputs: Mapping[str, np.ndarray], hour: np.ndarray, channel: np.ndarray) -> dict[str, np.ndarray]:
    """Request-time features from the CONTEXT_INPUTS arrays, the hour shown and the channel.

    Arrays in and out: training wraps it for its frame, serving fills its feature matrix from it
    without building a DataFrame per request, and both compute the same numbers. Returns the derived
    features and USER_CATEGORY_FEATURES with missing = 0 (no user x category row in force means no
    engagement with that category in the window).
    """
    out = {name: np.nan_to_num(np.asarray(inputs[name], dtype=float), nan=0.0) for name in USER_CATEGORY_FEATURES}
    views = np.asarray(inputs["views_30d"], dtype=float)
    out["category_view_share_30d"] = np.divide(
        out["category_views_30d"], views, out=np.zeros_like(views), where=views > 0
    )
    price = np.asarray(inputs["price_shown"], dtype=float)
    # A zero list price or a user who only ever paid 0 would make a ratio infinite: unknown, not infinitely dear.
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, base in (("price_vs_list", "list_price"), ("price_vs_user_avg", "avg_paid_price_90d")):
            ratio = price / np.asarray(inputs[base], dtype=float)
            out[name] = np.where(np.isinf(ratio), np.nan, ratio)
    out["hour"] = np.asarray(hour).astype(np.float32)
    out["is_app"] = (np.asarray(channel) == "app").astype(np.float32)
    return out


def add_context_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Request-time features (see `context_columns`) as columns of a copy of `frame`."""
    inputs = {name: frame[name].to_numpy(dtype=float, na_value=np.nan) for name in CONTEXT_INPUTS}
    context = context_columns(inputs, frame["event_timestamp"].dt.hour.to_numpy(), frame["channel"].to_numpy())
    return frame.assign(**context)


# (feature view, its join keys, the features the ranker reads from it)
JOINED_VIEWS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (USER_VIEW, ("user_id",), USER_FEATURES),
    (ITEM_VIEW, ("item_id",), ITEM_MODEL_FEATURES),
    (USER_CATEGORY_VIEW, ("user_id", "category_id"), USER_CATEGORY_FEATURES),
    (USER_TIER_VIEW, ("user_id",), TIER_FEATURES),
)


def point_in_time_join(store: FeatureStore, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Every feature view joined as of each row's timestamp, keeping every row.

    Feast's file offline store drops an entity row when a view has no feature row at or before
    its timestamp (a new user's first session, say), which would silently take new users out of
    training and evaluation. So each view is joined on its own and merged back by row number:
    "no history yet" stays a row, with missing values.
    """
    base = entity_df.reset_index(drop=True).assign(_row=np.arange(len(entity_df)))
    out = base
    for view, keys, features in JOINED_VIEWS:
        request = base[[*keys, "event_timestamp", "_row"]]
        try:
            found = store.get_historical_features(entity_df=request, features=[f"{view}:{f}" for f in features])
        except FeastObjectNotFoundException as exc:
            raise ValueError(
                f"feature view {view!r} is not in Feast project {store.project!r}: run `siyu features build`"
                " (or set SIYU_FEAST_PROJECT to the project that holds it)"
            ) from exc
        joined = found.to_df()
        out = out.merge(joined[["_row", *features]], on="_row", how="left")
    return out.drop(columns="_row")


def build_training_set(
    settings: Settings,
    store: FeatureStore,
    max_rows: int | None = 400_000,
    holdout_fraction: float = 0.2,
    seed: int = 0,
) -> TrainingSet:
    """Labelled impressions with every model feature as of their time, split in time for the holdout.

    `max_rows` samples the impressions before the point-in-time join, whose memory grows with them. On the
    200k-user benchmark world, training on 960k rows instead of 320k raised holdout AUC by 0.0014 (0.7867 ->
    0.7881, the same 240k holdout rows) while 1.2M sampled rows took the join's peak to 21.5 GB, against
    10.4 GB at 400k: the default keeps the smaller sample.
    """
    events = attach_user_ids(
        read_table(settings.events_dir, schema.EVENT_SCHEMA),
        read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA),
    )
    impressions = labelled_impressions(events)
    if impressions.empty:
        raise ValueError("no online views to learn from: the event log has no `view` events with an item")
    if not item_meta_path(settings).exists():
        raise ValueError(f"no features under {settings.features_dir}: run `siyu features build` first")
    categories = pd.read_parquet(item_meta_path(settings))
    impressions = impressions.merge(categories, on="item_id", how="left")
    impressions["category_id"] = impressions["category_id"].fillna(UNKNOWN_CATEGORY)
    if max_rows is not None and len(impressions) > max_rows:
        impressions = impressions.sample(max_rows, random_state=seed)
    joined = point_in_time_join(store, impressions)
    joined = joined.join(history_features(events, joined))
    with_categories = events.merge(categories, on="item_id", how="left")
    with_categories["category_id"] = with_categories["category_id"].fillna(UNKNOWN_CATEGORY)
    joined = joined.join(taste_traces(with_categories, joined))
    joined["item_favourites_before"] = favourites_before(events, joined)  # for the baselines, not the model
    view_ns = epoch_ns(joined["event_timestamp"])
    sold = units_sold_before(purchases_of(events), joined["item_id"].to_numpy(), stock_count_ns(view_ns), view_ns)
    joined = joined.assign(**live_stock_columns(joined["stock"].to_numpy(dtype=float, na_value=np.nan), sold))
    frame = add_context_features(joined).sort_values("event_timestamp", ignore_index=True)
    cutoff = frame["event_timestamp"].quantile(1 - holdout_fraction)
    return TrainingSet(frame=frame, cutoff=cutoff)
