"""Ranking logic of /recommend, kept free of BentoML so it can be loaded and tested on its own.

Per request: one online-store read for the user's row; candidate items' features come from an
in-process item table (refreshed in the background), because an online read grows with the
number of entity rows. Candidates are in-stock items; LightGBM scores them at the current price.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from feast import FeatureStore

from features.build import USER_CATEGORY_FEATURES, USER_FEATURES
from features.repo import ITEM_VIEW, USER_CATEGORY_VIEW, USER_VIEW, feature_store, item_meta_path, source_paths
from siyu.settings import Settings
from training.dataset import MODEL_FEATURES, add_context_features
from training.tracking import CHAMPION, alias_version, use_registry

MAX_CANDIDATES = 500  # most popular in-stock items scored per request
USER_REFS = [f"{USER_VIEW}:{f}" for f in USER_FEATURES]
USER_CATEGORY_REFS = [f"{USER_CATEGORY_VIEW}:{f}" for f in USER_CATEGORY_FEATURES]


class ModelNotFoundError(RuntimeError):
    """No @champion conversion model is registered yet: train one first."""


@dataclass
class Recommendation:
    item_id: str
    score: float
    reason: str


@dataclass
class RecommendResult:
    items: list[Recommendation]
    fallback: str | None = None
    degraded: bool = False
    model_version: str | None = None
    notes: list[str] = field(default_factory=list)


def latest_item_table(settings: Settings) -> pd.DataFrame:
    """Newest snapshot per item, with its category, ordered by popularity (units then views, last 30 days)."""
    snapshots = pd.read_parquet(source_paths(settings)[ITEM_VIEW])
    latest = snapshots.sort_values("event_timestamp").groupby("item_id", as_index=False).last()
    meta = pd.read_parquet(item_meta_path(settings))
    table = latest.merge(meta, on="item_id", how="left")
    table["in_stock"] = table["stock"].isna() | (table["stock"] > 0)
    return table.sort_values(["units_30d", "item_views_30d"], ascending=False, ignore_index=True)


class Ranker:
    """Holds the champion model, the Feast store and the item table for the lifetime of the service."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        version = alias_version(settings, settings.conversion_model_name, CHAMPION)
        if version is None:
            raise ModelNotFoundError(
                f"no @{CHAMPION} version of '{settings.conversion_model_name}' in {settings.mlflow_tracking_uri}:"
                " run `siyu train conversion` (or `make serve`, which bootstraps one)"
            )
        self.model_version = version
        use_registry(settings)
        # Load by version, not alias: a promotion in between must not pair one version's number with another's model.
        self.booster: lgb.Booster = mlflow.lightgbm.load_model(f"models:/{settings.conversion_model_name}/{version}")
        self.store: FeatureStore = feature_store(settings)
        self.items = latest_item_table(settings)
        self._stop = threading.Event()
        threading.Thread(target=self._refresh_items, name="item-table-refresh", daemon=True).start()

    def _refresh_items(self) -> None:
        while not self._stop.wait(self.settings.item_refresh_seconds):
            try:
                table = latest_item_table(self.settings)
            except (OSError, ValueError):
                continue  # keep serving the table we have; the next tick tries again
            self.items = table  # one reference swap: requests keep the table they started with

    def close(self) -> None:
        self._stop.set()

    def user_row(self, user_id: str) -> dict[str, float | None]:
        response = self.store.get_online_features(features=USER_REFS, entity_rows=[{"user_id": user_id}])
        row = response.to_dict()
        return {f: row[f][0] for f in USER_FEATURES}

    def popular(self, k: int) -> list[Recommendation]:
        table = self.items[self.items["in_stock"]].head(k)
        return [
            Recommendation(i, float(u), "popular in the last 30 days")
            for i, u in zip(table["item_id"], table["units_30d"], strict=True)
        ]

    def category_rows(self, user_id: str, categories: list[str]) -> pd.DataFrame:
        """The user's engagement with each candidate category (one online read, one row per category)."""
        rows = [{"user_id": user_id, "category_id": c} for c in categories]
        found = self.store.get_online_features(features=USER_CATEGORY_REFS, entity_rows=rows).to_df()
        return found[["category_id", *USER_CATEGORY_FEATURES]]

    def recommend(
        self, user_id: str, k: int, channel: str = "mini_program", now: datetime | None = None
    ) -> RecommendResult:
        items = self.items
        candidates = items[items["in_stock"]].head(MAX_CANDIDATES)
        try:
            user = self.user_row(user_id)
            known = any(value is not None for value in user.values())
            affinity = (
                self.category_rows(user_id, candidates["category_id"].dropna().unique().tolist()) if known else None
            )
        except Exception as exc:
            return RecommendResult(
                self.popular(k),
                fallback="popular",
                degraded=True,
                notes=[f"online store unavailable: {type(exc).__name__}"],
            )
        if affinity is None:
            return RecommendResult(
                self.popular(k), fallback="popular", model_version=self.model_version, notes=["unknown user"]
            )
        if candidates.empty:
            return RecommendResult([], fallback="popular", model_version=self.model_version, notes=["nothing in stock"])
        candidates = candidates.merge(affinity, on="category_id", how="left")
        for name, value in user.items():
            candidates[name] = np.nan if value is None else value
        candidates["price_shown"] = candidates["price"]
        candidates["channel"] = channel
        candidates["event_timestamp"] = pd.Timestamp(now or datetime.now(UTC))
        frame = add_context_features(candidates)
        scores = self.booster.predict(frame[list(MODEL_FEATURES)].astype(np.float64))
        top = np.argsort(-scores, kind="stable")[:k]
        picked = [
            Recommendation(
                str(frame["item_id"].iat[i]), float(scores[i]), "predicted purchase probability at today's price"
            )
            for i in top
        ]
        return RecommendResult(picked, model_version=self.model_version)
