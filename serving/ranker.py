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
from siyu.tracking import CHAMPION, alias_version, use_registry
from training.dataset import ITEM_MODEL_FEATURES, MODEL_FEATURES, add_context_features

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


@dataclass(frozen=True)
class Catalog:
    """The item table and, cut from it once per refresh, the candidates every request scores.

    Candidates are kept as column arrays: building one DataFrame from arrays per request is far
    cheaper than inserting user columns into a frame one by one.
    """

    items: pd.DataFrame
    candidates: dict[str, np.ndarray]
    categories: list[str]

    @classmethod
    def from_items(cls, items: pd.DataFrame) -> Catalog:
        chosen = items[items["in_stock"]].head(MAX_CANDIDATES)
        names = ["item_id", "category_id", "price", *ITEM_MODEL_FEATURES]
        columns = {name: chosen[name].to_numpy() for name in names}
        return cls(items, columns, chosen["category_id"].dropna().unique().tolist())


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
        self.catalog = Catalog.from_items(latest_item_table(settings))
        self._stop = threading.Event()
        threading.Thread(target=self._refresh_items, name="item-table-refresh", daemon=True).start()

    def _refresh_items(self) -> None:
        while not self._stop.wait(self.settings.item_refresh_seconds):
            try:
                catalog = Catalog.from_items(latest_item_table(self.settings))
            except (OSError, ValueError, KeyError):
                continue  # keep serving the catalog we have; the next tick tries again
            self.catalog = catalog  # one reference swap: requests keep the catalog they started with

    def close(self) -> None:
        self._stop.set()

    def user_row(self, user_id: str) -> dict[str, float | None]:
        response = self.store.get_online_features(features=USER_REFS, entity_rows=[{"user_id": user_id}])
        row = response.to_dict()
        return {f: row[f][0] for f in USER_FEATURES}

    def popular(self, k: int) -> list[Recommendation]:
        items = self.catalog.items
        table = items[items["in_stock"]].head(k)
        return [
            Recommendation(i, float(u), "popular in the last 30 days")
            for i, u in zip(table["item_id"], table["units_30d"], strict=True)
        ]

    def category_rows(self, user_id: str, categories: list[str]) -> pd.DataFrame:
        """The user's engagement with each candidate category (one online read, one row per category)."""
        rows = [{"user_id": user_id, "category_id": c} for c in categories]
        found = self.store.get_online_features(features=USER_CATEGORY_REFS, entity_rows=rows).to_dict()
        return pd.DataFrame({f: found[f] for f in USER_CATEGORY_FEATURES}, index=found["category_id"], dtype=float)

    def recommend(
        self, user_id: str, k: int, channel: str = "mini_program", now: datetime | None = None
    ) -> RecommendResult:
        catalog = self.catalog
        try:
            user = self.user_row(user_id)
            known = any(value is not None for value in user.values())
            affinity = self.category_rows(user_id, catalog.categories) if known else None
        except Exception as exc:  # any online-store failure degrades to a fallback, never a 5xx
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
        n = len(catalog.candidates["item_id"])
        if n == 0:
            return RecommendResult([], fallback="popular", model_version=self.model_version, notes=["nothing in stock"])
        per_candidate = affinity.reindex(catalog.candidates["category_id"])
        frame = pd.DataFrame(
            {
                **catalog.candidates,
                **{name: np.full(n, np.nan if value is None else value, dtype=float) for name, value in user.items()},
                **{name: per_candidate[name].to_numpy() for name in USER_CATEGORY_FEATURES},
                "price_shown": catalog.candidates["price"],
                "channel": channel,
                "event_timestamp": pd.Timestamp(now or datetime.now(UTC)),
            }
        )
        frame = add_context_features(frame)
        # One thread: for a few hundred rows, thread start-up costs more than it saves.
        scores = self.booster.predict(frame[list(MODEL_FEATURES)].to_numpy(dtype=np.float64), num_threads=1)
        top = np.argsort(-scores, kind="stable")[:k]
        picked = [
            Recommendation(
                str(frame["item_id"].iat[i]), float(scores[i]), "predicted purchase probability at today's price"
            )
            for i in top
        ]
        return RecommendResult(picked, model_version=self.model_version)
