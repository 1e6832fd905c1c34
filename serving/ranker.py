"""Ranking logic of /recommend, kept free of BentoML so it can be loaded and tested on its own.

Per request: one online-store read for the user's row; candidate items' features come from an
in-process item table (refreshed in the background), because an online read grows with the
number of entity rows. Candidates are the union of three retrieval sources: the decision-path
model's next items, items that co-occur with the user's recent steps, and the most popular
in-stock items; LightGBM scores them all at the current price, with what the user already did with
each item and in the live session (read from the user's slice of the event log), and the best k are
returned. The champion models follow their registry aliases on the refresh tick.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from feast import FeatureStore

from features.build import USER_CATEGORY_FEATURES, USER_FEATURES
from features.repo import (
    ITEM_VIEW,
    USER_CATEGORY_VIEW,
    USER_TIER_VIEW,
    USER_VIEW,
    feature_store,
    item_meta_path,
    source_paths,
)
from serving.histories import BEHAVIOUR_FEATURES, UserHistories
from serving.paths import DecisionPaths, PathSuggestions, log_version
from siyu.settings import Settings
from siyu.tracking import CHAMPION, alias_version, use_registry
from tiers.history import TIER_FEATURES
from training.dataset import ITEM_MODEL_FEATURES, add_context_features
from training.sequence.data import SequenceDataError
from training.sequence.recommender import SASRecRecommender
from training.sequence.registry import load_version as load_sequence_version

MAX_CANDIDATES = 500  # most popular in-stock items scored per request
PATH_CANDIDATES = 100  # items taken from each of the decision-path model and co-occurrence
USER_REFS = [f"{USER_VIEW}:{f}" for f in USER_FEATURES] + [f"{USER_TIER_VIEW}:{f}" for f in TIER_FEATURES]
USER_CATEGORY_REFS = [f"{USER_CATEGORY_VIEW}:{f}" for f in USER_CATEGORY_FEATURES]


class ModelNotFoundError(RuntimeError):
    """No @champion conversion model is registered yet: train one first."""


class Source:
    """Why an item is a candidate, in the words the response gives; the first source to propose an item wins."""

    NEXT_ON_PATH = "likely next on the user's decision path"
    CO_OCCURRING = "often chosen with what the user looked at recently"
    POPULAR = "popular in the last 30 days"


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
    intent: float | None = None
    sequence_model_version: str | None = None


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
    """The in-stock items as column arrays, most popular first, and an index from item id to row.

    Each request cuts its candidates from these arrays by row: building one DataFrame from arrays per
    request is far cheaper than inserting user columns into a frame one by one.
    """

    items: pd.DataFrame
    in_stock: dict[str, np.ndarray]
    rows: pd.Index  # item id (as text) -> row of in_stock
    categories: list[str]  # of the in-stock items: one online read fetches the user's row for each

    @classmethod
    def from_items(cls, items: pd.DataFrame) -> Catalog:
        stocked = items[items["in_stock"]]
        names = ["item_id", "category_id", "price", *ITEM_MODEL_FEATURES]
        columns = {name: stocked[name].to_numpy() for name in names}
        categories = stocked["category_id"].dropna().unique().tolist()
        return cls(items, columns, pd.Index(stocked["item_id"].astype(str)), categories)

    def candidate_rows(self, *proposals: tuple[list[str], str]) -> tuple[np.ndarray, list[str]]:
        """Rows of the in-stock items the (ids, reason) proposals name, then the most popular, without repeats.

        Items out of stock or unknown to the catalogue are dropped; each kept row has its first proposer's reason.
        """
        rows: list[int] = []
        reasons: list[str] = []
        seen: set[int] = set()
        for ids, reason in proposals:
            for row in self.rows.get_indexer(ids):
                if row >= 0 and row not in seen:
                    seen.add(row)
                    rows.append(int(row))
                    reasons.append(reason)
        for row in range(min(MAX_CANDIDATES, len(self.rows))):
            if row not in seen:
                rows.append(row)
                reasons.append(Source.POPULAR)
        return np.asarray(rows, dtype=np.int64), reasons


@dataclass(frozen=True)
class ConversionChampion:
    """One conversion model version and the feature columns it was trained on, swapped in as a unit."""

    version: str
    booster: lgb.Booster
    features: list[str]  # by name: an older champion keeps working after the feature list grows

    @classmethod
    def load(cls, settings: Settings, version: str) -> ConversionChampion:
        use_registry(settings)
        # Load by version, not alias: a promotion in between must not pair one version's number with another's model.
        booster = mlflow.lightgbm.load_model(f"models:/{settings.conversion_model_name}/{version}")
        return cls(version, booster, booster.feature_name())


class Ranker:
    """Holds the champion models, the Feast store, the item table and users' paths for the service's lifetime."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        version = alias_version(settings, settings.conversion_model_name, CHAMPION)
        if version is None:
            raise ModelNotFoundError(
                f"no @{CHAMPION} version of '{settings.conversion_model_name}' in {settings.mlflow_tracking_uri}:"
                " run `siyu train conversion` (or `make serve`, which bootstraps one)"
            )
        self.champion = ConversionChampion.load(settings, version)
        self.sequence_model_version = alias_version(settings, settings.sequence_model_name, CHAMPION)
        self.sequence_model: SASRecRecommender | None = None
        if self.sequence_model_version is not None:
            self.sequence_model = load_sequence_version(settings, self.sequence_model_version)
        self.store: FeatureStore = feature_store(settings)
        self.catalog = Catalog.from_items(latest_item_table(settings))
        self.paths: DecisionPaths | None = None
        self.histories: UserHistories | None = None
        self.paths_note: str | None = None
        self.registry_note: str | None = None
        self._paths_version: tuple[tuple[str, int, int], ...] = ()
        self._refresh_paths()
        self._stop = threading.Event()
        threading.Thread(target=self._refresh_loop, name="item-table-refresh", daemon=True).start()

    @property
    def model_version(self) -> str:
        return self.champion.version

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.settings.item_refresh_seconds):
            self.refresh()

    def refresh(self) -> None:
        """Reload champions, the item table and users' paths; on a failure keep serving what we have."""
        self._reload_champions()
        with contextlib.suppress(OSError, ValueError, KeyError):  # the next tick tries again
            self.catalog = Catalog.from_items(latest_item_table(self.settings))
        self._refresh_paths()

    def _reload_champions(self) -> None:
        """Follow the @champion aliases: a promoted version is loaded beside the old one, then swapped in.

        Requests hold the champion they started with (one reference read), so none mixes two versions.
        """
        settings = self.settings
        try:
            version = alias_version(settings, settings.conversion_model_name, CHAMPION)
            if version is not None and version != self.champion.version:
                self.champion = ConversionChampion.load(settings, version)
            sequence = alias_version(settings, settings.sequence_model_name, CHAMPION)
            if sequence is not None and sequence != self.sequence_model_version:
                self.sequence_model = load_sequence_version(settings, sequence)
                self.sequence_model_version = sequence
                self._paths_version = ()  # paths are read by the model: rebuild them with the new one
        except Exception as exc:  # an unreachable registry or unreadable artifact: keep serving the loaded models
            self.registry_note = f"model registry unavailable, serving the loaded versions: {type(exc).__name__}"
            return
        self.registry_note = None

    def _refresh_paths(self) -> None:
        """Rebuild users' paths, unless the event log is file for file what they were built from."""
        try:
            version = log_version(self.settings)
            if self.paths is not None and version == self._paths_version:
                return  # the rebuild (log read, co-occurrence, re-tokenising) would give the same paths
            paths = DecisionPaths.from_store(self.settings, self.sequence_model, self.sequence_model_version)
            histories = UserHistories.from_store(self.settings)
        except (SequenceDataError, OSError, ValueError, KeyError) as exc:
            self.paths_note = f"users' paths unavailable: {exc}"
            return
        # One reference swap each: requests keep the catalogue and paths they started with.
        self.paths, self.histories, self.paths_note, self._paths_version = paths, histories, None, version

    def close(self) -> None:
        self._stop.set()

    def user_row(self, user_id: str) -> dict[str, float | None]:
        response = self.store.get_online_features(features=USER_REFS, entity_rows=[{"user_id": user_id}])
        row = response.to_dict()
        return {f: row[f][0] for f in (*USER_FEATURES, *TIER_FEATURES)}

    def popular(self, k: int) -> list[Recommendation]:
        items = self.catalog.items
        table = items[items["in_stock"]].head(k)
        return [
            Recommendation(i, float(u), Source.POPULAR)
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
        catalog, champion = self.catalog, self.champion
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
        notes = [note for note in (self.paths_note, self.registry_note) if note]
        try:
            suggestions = self.suggest(user_id)
        except Exception as exc:  # path retrieval never fails a request: popularity still proposes candidates
            suggestions = PathSuggestions()
            notes.append(f"path retrieval failed: {type(exc).__name__}")
        if affinity is None:
            if suggestions.steps == 0:
                return RecommendResult(
                    self.popular(k), fallback="popular", model_version=champion.version, notes=["unknown user"]
                )
            # Events but no features yet (they arrived after the last materialisation): rank from the path.
            affinity = pd.DataFrame(columns=list(USER_CATEGORY_FEATURES), dtype=float)
            notes.append("no stored features for this user yet: ranked from their recent events")
        rows, reasons = catalog.candidate_rows(
            (suggestions.next_items, Source.NEXT_ON_PATH), (suggestions.co_occurring, Source.CO_OCCURRING)
        )
        if rows.size == 0:
            return RecommendResult([], fallback="popular", model_version=champion.version, notes=["nothing in stock"])
        scores = self._purchase_probabilities(champion, catalog, rows, user_id, user, affinity, channel, now)
        top = np.argsort(-scores, kind="stable")[:k]
        return RecommendResult(
            [Recommendation(str(catalog.in_stock["item_id"][rows[i]]), float(scores[i]), reasons[i]) for i in top],
            model_version=champion.version,
            notes=notes,
            intent=suggestions.intent,
            sequence_model_version=suggestions.model_version,
        )

    def suggest(self, user_id: str) -> PathSuggestions:
        paths = self.paths
        return paths.suggest(user_id, PATH_CANDIDATES) if paths is not None else PathSuggestions()

    def _purchase_probabilities(
        self,
        champion: ConversionChampion,
        catalog: Catalog,
        rows: np.ndarray,
        user_id: str,
        user: dict[str, float | None],
        affinity: pd.DataFrame,
        channel: str,
        now: datetime | None,
    ) -> np.ndarray:
        """The conversion model's P(purchase) for each candidate row, shown at today's price on `channel`."""
        n = rows.size
        now = now or datetime.now(UTC)
        candidates = {name: values[rows] for name, values in catalog.in_stock.items()}
        per_candidate = affinity.reindex(candidates["category_id"])
        frame = pd.DataFrame(
            {
                **candidates,
                **{name: np.full(n, np.nan if value is None else value, dtype=float) for name, value in user.items()},
                **{name: per_candidate[name].to_numpy() for name in USER_CATEGORY_FEATURES},
                "price_shown": candidates["price"],
                "channel": channel,
                "event_timestamp": pd.Timestamp(now),
            }
        )
        frame = add_context_features(frame)
        histories = self.histories
        if histories is not None:
            frame[list(BEHAVIOUR_FEATURES)] = histories.features(
                user_id, candidates["item_id"], candidates["category_id"], now
            )
        else:  # no log read yet: LightGBM takes its missing-value branches
            frame[list(BEHAVIOUR_FEATURES)] = np.nan
        # One thread: for a few hundred rows, thread start-up costs more than it saves.
        return champion.booster.predict(frame[champion.features].to_numpy(dtype=np.float64), num_threads=1)
