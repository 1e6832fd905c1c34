"""/recommend as one pipeline with named stages, kept free of BentoML so it can be loaded and tested on its own.

1. candidates: the user's items due for repurchase, the decision-path model's next items, items that
   co-occur with the user's recent steps, new arrivals, promoted/overstocked items, and the most popular
   in-stock items (each item keeps the reason of the first source that proposed it);
2. features: one online-store read for the user's rows (behind a circuit breaker); candidate items'
   features from the in-process item table, because an online read grows with the number of entity rows;
   what the user already did with each item and in the live session from their slice of the event log,
   with events stored since the last rebuild (fresh events) joined in;
3. ranking: LightGBM's purchase probability for every candidate at today's price;
4. rules (serving/recommend/rules.py): filters, diversity caps, promotion and exploration slots, per request.

The champion models follow their registry aliases on the refresh tick.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from feast import FeatureStore

from features.build import USER_CATEGORY_FEATURES, USER_FEATURES
from features.online_rows import OnlineRows
from features.push import missing_push_sources, push_activity
from features.repo import (
    ITEM_VIEW,
    USER_CATEGORY_VIEW,
    USER_TIER_VIEW,
    USER_VIEW,
    feature_store,
    item_meta_path,
    source_paths,
)
from serving.recommend import item_to_item
from serving.recommend.breaker import CircuitBreaker
from serving.recommend.catalog import MAX_CANDIDATES, Catalog, Recommendation, Source, latest_item_table
from serving.recommend.compiled_trees import Predict, compiled_predictor, lightgbm_predictor
from serving.recommend.feature_matrix import CategoryEngagement, candidate_matrix
from serving.recommend.fresh_events import FreshEvents, read_part, with_user_ids
from serving.recommend.histories import BEHAVIOUR_FEATURES, UserHistories
from serving.recommend.identities import EMPTY_IDENTITY, IdentityDirectory, ResolvedUser
from serving.recommend.log_views import STEP_TIME, LogViews, event_parts, log_version
from serving.recommend.paths import DecisionPaths, PathSuggestions
from serving.recommend.rules import Rules, Scored, apply_rules
from serving.recommend.sales import SalesSinceCount
from serving.recommend.tier_strategy import DEFAULT_TIER_RULES, checked_playbook, rules_for, tier_of
from siyu.data.identity import merge_links
from siyu.settings import Settings
from siyu.tracking import CHAMPION, served_version, use_registry
from tiers.history import TIER_FEATURES
from training.live_stock import live_stock_columns
from training.sequence.data import SequenceDataError
from training.sequence.recommender import SASRecRecommender
from training.sequence.registry import load_version as load_sequence_version

T = TypeVar("T")
log = logging.getLogger(__name__)
PATH_CANDIDATES = 100  # items taken from each of the decision-path model and co-occurrence
SOURCE_CANDIDATES = 50  # items taken from each of new arrivals and promotions
STRATEGY_REASONS = frozenset({Source.NEW_ARRIVAL, Source.PROMOTED, Source.EXPLORATION, Source.REPURCHASE})
USER_REFS = [f"{USER_VIEW}:{f}" for f in USER_FEATURES] + [f"{USER_TIER_VIEW}:{f}" for f in TIER_FEATURES]


NOT_PUSHED = "online features not updated, counted at the next materialisation"
REAPPLY = "run `siyu features build` to register them"


class ModelNotFoundError(RuntimeError):
    """No @champion conversion model is registered yet: train one first."""


@dataclass
class RecommendResult:
    items: list[Recommendation]
    fallback: str | None = None
    degraded: bool = False
    model_version: str | None = None
    notes: list[str] = field(default_factory=list)
    intent: float | None = None
    sequence_model_version: str | None = None
    tier: str | None = None  # the user's value tier, when their rules came from its playbook
    candidates: int = 0  # items the model ranked before the rules


@dataclass
class StoredEvents:
    users: list[str]  # unified ids of the events' people
    features_updated: int = 0  # users whose online rows the push path updated
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ConversionChampion:
    """One conversion model version and the feature columns it was trained on, swapped in as a unit."""

    version: str
    booster: lgb.Booster
    features: list[str]  # by name: an older champion keeps working after the feature list grows
    predict: Predict  # rows -> P(purchase): the compiled trees, or LightGBM's predictor
    compiled_note: str | None = None  # why the trees are not compiled, when they are not

    @classmethod
    def load(cls, settings: Settings, version: str) -> ConversionChampion:
        use_registry(settings)
        # Load by version, not alias: a promotion in between must not pair one version's number with another's model.
        booster = mlflow.lightgbm.load_model(f"models:/{settings.conversion_model_name}/{version}")
        if not settings.compile_trees:
            return cls(version, booster, booster.feature_name(), lightgbm_predictor(booster), "SIYU_COMPILE_TREES=0")
        predict, note = compiled_predictor(booster, settings.data_dir / "compiled")
        if note:
            log.warning("conversion model %s: %s", version, note)
        return cls(version, booster, booster.feature_name(), predict, note)


class Ranker:
    """Holds the champion models, the Feast store, the item table and users' paths for the service's lifetime."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        version = served_version(settings, settings.conversion_model_name)
        if version is None:
            raise ModelNotFoundError(
                f"no @{CHAMPION} version of '{settings.conversion_model_name}' in {settings.mlflow_tracking_uri}:"
                " run `siyu train conversion` (or `make serve`, which bootstraps one)"
            )
        self.champion = ConversionChampion.load(settings, version)
        self.sequence_model_version = served_version(settings, settings.sequence_model_name)
        self.sequence_model: SASRecRecommender | None = None
        if self.sequence_model_version is not None:
            self.sequence_model = load_sequence_version(settings, self.sequence_model_version)
        self.store: FeatureStore = feature_store(settings, fail_fast=True)
        self.online = OnlineRows(self.store, [USER_VIEW, USER_TIER_VIEW, USER_CATEGORY_VIEW])
        self.breaker = CircuitBreaker(settings.breaker_cooldown_seconds)
        self._catalog_memo: dict[str, tuple[Catalog, object]] = {}  # see _per_catalog
        self.playbook = checked_playbook(settings.tier_rules or DEFAULT_TIER_RULES)
        self._catalog_files: tuple[tuple[int, int] | None, ...] | None = None  # none read yet
        self._reload_catalog()
        self.log: LogViews | None = None
        self.fresh = FreshEvents()  # events stored since `log` was built, by user
        self._fresh_lock = threading.Lock()  # serialises writers of `fresh`; readers take the reference
        self.paths_note: str | None = None
        self.registry_note: str | None = None
        self._identity_stat: tuple[int, int] | None = None  # (size, mtime) of the identity map `log` resolves by
        self._built = 0.0  # time.monotonic() of the last build of `log`
        self.sales = SalesSinceCount()
        self._refresh_log()
        self._warm_sales()
        self._stop = threading.Event()
        threading.Thread(target=self._refresh_loop, name="item-table-refresh", daemon=True).start()
        threading.Thread(target=self._watch_loop, name="event-log-watch", daemon=True).start()

    @property
    def model_version(self) -> str:
        return self.champion.version

    @property
    def related_version(self) -> str | None:
        """Names the neighbour lists /similar and /bought-together read: the log files they were built from."""
        log = self.log
        return f"co-occurrence@{log.built_at}" if log is not None else None

    @property
    def paths(self) -> DecisionPaths | None:
        return self.log.paths if self.log is not None else None

    @property
    def histories(self) -> UserHistories | None:
        return self.log.histories if self.log is not None else None

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.settings.item_refresh_seconds):
            self.refresh(rebuild_after=self.settings.views_rebuild_seconds)

    def _watch_loop(self) -> None:
        while not self._stop.wait(self.settings.events_poll_seconds):
            with contextlib.suppress(OSError, ValueError, KeyError):  # a part vanishing mid-read: next poll
                self.watch_log()

    def watch_log(self) -> None:
        """Read the event-log parts that appeared since the views were built (or since the last poll), and the
        identity map if another worker merged links into it."""
        log = self.log
        if log is None:
            return
        if _stat(self.settings.identity_map_path) != self._identity_stat:
            self._reload_identities()
            log = self.log
        built = {name for name, _, _ in log.version}
        for path in event_parts(self.settings):
            if path.name not in built and path.name not in self.fresh.parts:
                self.add_fresh(path.name, self._with_categories(read_part(path, log.identities)))

    def merge_identities(self, links: pd.DataFrame) -> list[str]:
        """Merge identity links into the stored map and resolve with it from now on; each link's user id.

        The identifiers resolve to the merged person at once (in the other workers within a poll); the
        person's events stored under the ids merged away join their history at the next rebuild of the views.
        """
        identity = IdentityDirectory(merge_links(self.settings, links))
        self._reload_identities(identity)
        return [identity.resolve(t, k).user_id for t, k in zip(links["key_type_a"], links["key_a"], strict=True)]

    def _reload_identities(self, identity: IdentityDirectory | None = None) -> None:
        """Swap the stored identity map into the current views (read from disk unless given)."""
        with self._fresh_lock:
            stat = _stat(self.settings.identity_map_path)
            identity = identity if identity is not None else IdentityDirectory.from_store(self.settings)
            if self.log is not None:
                self.log = dataclasses.replace(self.log, identities=identity)
            self._identity_stat = stat

    def add_stored(self, part: str, events: pd.DataFrame) -> StoredEvents:
        """Events this process just stored (in `part`): counted from the next request on (their paths and
        histories), and pushed into their users' online features (RFM, activity, category engagement)."""
        log = self.log
        identities = log.identities if log is not None else IdentityDirectory(EMPTY_IDENTITY)
        events = self._with_categories(with_user_ids(events, identities))
        self.add_fresh(part, events)
        users = events["user_id"].drop_duplicates().tolist()
        if missing := missing_push_sources(self.store):  # a registry applied before the push path existed
            return StoredEvents(users, notes=[f"{NOT_PUSHED}: the feature registry lacks {missing} ({REAPPLY})"])
        try:
            pushed = self.breaker.call(lambda: push_activity(self.store, self.online, events))
        except Exception as exc:  # the events are stored: the next materialisation counts them
            return StoredEvents(users, notes=[f"{NOT_PUSHED}: online store unavailable ({type(exc).__name__})"])
        return StoredEvents(users, pushed.users)

    def _with_categories(self, events: pd.DataFrame) -> pd.DataFrame:
        """With each event's item category: the taste traces and the category features count by it."""
        categories = self.catalog.items.set_index("item_id")["category_id"]
        return events.assign(category_id=events["item_id"].map(categories))

    def add_fresh(self, part: str, events: pd.DataFrame) -> None:
        """Count a stored part's events (with `user_id`, `category_id`) in every answer until the next rebuild."""
        events = events.astype({"event_time": STEP_TIME})  # parts read back and batches just stored: one unit
        with self._fresh_lock:
            if part not in self.fresh.parts:
                self.fresh = self.fresh.adding(part, events)

    def refresh(self, rebuild_after: float = 0.0) -> None:
        """Reload champions, the item table and users' paths; on a failure keep serving what we have.

        `rebuild_after` (seconds): when the log only gained parts, which are served as fresh events
        meanwhile, rebuild the views only once the last build is this old. A rebuild at 30k users takes
        ~4.5 s of CPU, and requests in the same process slow down beside it (the GIL): on every refresh
        tick while events flow, that was a seconds-long stall each minute.
        """
        self._reload_champions()
        with contextlib.suppress(OSError, ValueError, KeyError):  # the next tick tries again
            self._reload_catalog()
        self._refresh_log(rebuild_after=rebuild_after)
        self._warm_sales()

    def _reload_catalog(self) -> None:
        """A new catalogue only when the item snapshots or attributes changed on disk since the last read.

        Rebuilding it reads and groups every item snapshot, and a new catalogue drops the memos kept per
        catalogue (units sold since the counts, promoted and new items), which the next tick or request
        recounts: done every minute regardless, that was a stall of the worker each minute for nothing.
        """
        files = _item_files(self.settings)  # taken before the read: a file changing during it is read again
        if files != self._catalog_files:
            self.catalog = Catalog.from_items(latest_item_table(self.settings))
            self._catalog_files = files

    def _warm_sales(self) -> None:
        """Count the log's sales since the catalogue's stock counts here, on the refresh tick, not in a request."""
        log = self.log
        if log is not None:
            self.sales.logged_units(self.catalog, log.sales)

    def _reload_champions(self) -> None:
        """Follow the @champion aliases: a promoted version is loaded beside the old one, then swapped in.

        Requests hold the champion they started with (one reference read), so none mixes two versions.
        """
        settings = self.settings
        try:
            version = served_version(settings, settings.conversion_model_name)
            if version is not None and version != self.champion.version:
                self.champion = ConversionChampion.load(settings, version)
            sequence = served_version(settings, settings.sequence_model_name)
            if sequence is not None and sequence != self.sequence_model_version:
                self.sequence_model = load_sequence_version(settings, sequence)
                self.sequence_model_version = sequence
                self._refresh_log(force=True)  # paths are read by the model: rebuild them with the new one
        except Exception as exc:  # an unreachable registry or unreadable artifact: keep serving the loaded models
            self.registry_note = f"model registry unavailable, serving the loaded versions: {type(exc).__name__}"
            return
        self.registry_note = None

    def _refresh_log(self, force: bool = False, rebuild_after: float = 0.0) -> None:
        """Rebuild the log's views, unless the event log is file for file what they were built from, or it only
        gained parts (read as fresh events) since a build younger than `rebuild_after` seconds."""
        try:
            if not force and self.log is not None:
                version = log_version(self.settings)
                if version == self.log.version:
                    return  # the rebuild (log read, co-occurrence, re-tokenising) would give the same views
                if set(self.log.version) <= set(version) and time.monotonic() - self._built < rebuild_after:
                    return
            previous = None if force else self.log  # a new model encodes every path afresh
            log = LogViews.build(self.settings, self.sequence_model, self.sequence_model_version, previous)
        except (SequenceDataError, OSError, ValueError, KeyError) as exc:
            self.paths_note = f"users' paths unavailable: {exc}"
            return
        # One reference swap: requests keep the views they started with. Fresh parts the rebuild read are dropped.
        with self._fresh_lock:
            self.log, self.paths_note, self._built = log, None, time.monotonic()
            identity = self.settings.identity_map_path.name
            self._identity_stat = next(((size, mtime) for name, size, mtime in log.version if name == identity), None)
            built = {name for name, _, _ in log.version}
            still = {part for part in self.fresh.parts if (self.settings.events_dir / part).exists()}
            self.fresh = self.fresh.keeping(still - built)

    def resolve(self, user_key_type: str, user_key: str) -> ResolvedUser:
        """The unified user id of any identifier, by the identity map the current views were built from."""
        log = self.log
        if log is None:
            return IdentityDirectory(EMPTY_IDENTITY).resolve(user_key_type, user_key)
        return log.identities.resolve(user_key_type, user_key)

    def similar(self, item_id: str, k: int, in_stock_only: bool = True) -> list[Recommendation]:
        """Items like `item_id` (raises UnknownItems for an id neither the catalogue nor the log knows)."""
        log = self.log
        return item_to_item.similar(log.related if log else None, self.catalog, item_id, k, in_stock_only)

    def bought_together(self, basket: list[str], k: int, in_stock_only: bool = True) -> list[Recommendation]:
        """Items that go with the basket (raises UnknownItems naming the ids nobody knows)."""
        log = self.log
        return item_to_item.bought_together(log.related if log else None, self.catalog, basket, k, in_stock_only)

    def close(self) -> None:
        self._stop.set()

    def online_rows(
        self, user_id: str, categories: list[str]
    ) -> tuple[dict[str, float | None], CategoryEngagement | None]:
        """The user's row and, for a user the store knows, their rows by category (None for a stranger).

        `categories`: the catalogue's, in code order (the engagement is looked up by code).
        """
        user_key = [{"user_id": user_id}]
        user = dict.fromkeys((*USER_FEATURES, *TIER_FEATURES))
        for view, features in ((USER_VIEW, USER_FEATURES), (USER_TIER_VIEW, TIER_FEATURES)):
            if (row := self.online.read(view, user_key, features)[0]) is not None:
                user |= row.values
        if all(value is None for value in user.values()):
            return user, None
        if not categories:
            return user, CategoryEngagement.none()
        keys = [{"user_id": user_id, "category_id": c} for c in categories]
        return user, CategoryEngagement.read(self.online.read(USER_CATEGORY_VIEW, keys, USER_CATEGORY_FEATURES))

    def user_row(self, user_id: str) -> dict[str, float | None]:
        response = self.store.get_online_features(features=USER_REFS, entity_rows=[{"user_id": user_id}])
        row = response.to_dict()
        return {f: row[f][0] for f in (*USER_FEATURES, *TIER_FEATURES)}

    def popular(self, k: int, rules: Rules | None = None) -> list[Recommendation]:
        """The fallback answer: the most popular in-stock items (score: units sold in 30 days), rules applied."""
        catalog = self.catalog

        def everyone_popular() -> Scored:
            rows = np.arange(min(MAX_CANDIDATES, len(catalog.rows)))
            units = np.nan_to_num(catalog.in_stock["units_30d"][rows].astype(float))
            return self._scored(catalog, rows, units, np.full(rows.size, Source.POPULAR, dtype=object))

        # The same for every request until the catalogue is reloaded: the fallback must stay cheap under load.
        scored = self._per_catalog("popular", catalog, everyone_popular)
        return apply_rules(scored, rules or Rules(), k, bought_recently=set(), due=set())

    def _per_catalog(self, name: str, catalog: Catalog, build: Callable[[], T]) -> T:
        """`build()`, kept while `catalog` is the one in service (a reload replaces the catalogue object)."""
        cached = self._catalog_memo.get(name)
        if cached is None or cached[0] is not catalog:
            cached = self._catalog_memo[name] = (catalog, build())
        return cached[1]

    def _scored(self, catalog: Catalog, rows: np.ndarray, scores: np.ndarray, reasons: np.ndarray) -> Scored:
        stock = catalog.in_stock
        promoted = self._per_catalog(
            "promoted", catalog, lambda: catalog.promoted(self.settings.overstock_days_of_cover)
        )
        return Scored(
            item_id=stock["item_id"][rows],
            score=scores,
            reason=reasons,
            category=stock["category_id"][rows],
            price=stock["price"][rows].astype(float),
            promoted=promoted[rows],
            age_days=stock["age_days"][rows].astype(float),
            views_30d=np.nan_to_num(stock["item_views_30d"][rows].astype(float)),
        )

    def recommend(
        self,
        user_id: str,
        k: int,
        channel: str = "mini_program",
        now: datetime | None = None,
        rules: Rules | None = None,
    ) -> RecommendResult:
        """Candidates -> features -> LightGBM ranking -> rules, for one user (see the module doc)."""
        catalog, champion, rules = self.catalog, self.champion, rules or Rules()
        now = now or datetime.now(UTC)
        try:
            user, affinity = self.breaker.call(lambda: self.online_rows(user_id, catalog.categories))
        except Exception as exc:  # any online-store failure degrades to a fallback at once, never a 5xx
            return RecommendResult(
                self.popular(k, rules),
                fallback="popular",
                degraded=True,
                notes=[f"online store unavailable: {type(exc).__name__}"],
            )
        notes = [note for note in (self.paths_note, self.registry_note) if note]
        fresh = self.fresh.by_user.get(user_id)
        try:
            suggestions = self.suggest(user_id, fresh)
        except Exception as exc:  # path retrieval never fails a request: popularity still proposes candidates
            suggestions = PathSuggestions()
            notes.append(f"path retrieval failed: {type(exc).__name__}")
        if affinity is None:
            if suggestions.steps == 0:
                return RecommendResult(
                    self.popular(k, rules), fallback="popular", model_version=champion.version, notes=["unknown user"]
                )
            # Events but no features yet (they arrived after the last materialisation): rank from the path.
            affinity = CategoryEngagement.none()
            notes.append("no stored features for this user yet: ranked from their recent events")
        tier = tier_of(user)
        rules = rules_for(tier, rules, self.playbook)
        log, stamp = self.log, pd.Timestamp(now).value
        past = log.histories.events_of(user_id, fresh) if log is not None else None
        due = log.cycles.due(past, stamp) if log is not None else []
        overstock = self.settings.overstock_days_of_cover
        most_promoted = self._per_catalog(
            "most promoted", catalog, lambda: catalog.most_promoted(SOURCE_CANDIDATES, overstock)
        )
        rows, reasons = catalog.candidate_rows(
            (due, Source.REPURCHASE),
            (suggestions.next_items, Source.NEXT_ON_PATH),
            (suggestions.co_occurring, Source.CO_OCCURRING),
            (catalog.newest(SOURCE_CANDIDATES, rules.new_item_days), Source.NEW_ARRIVAL),
            (most_promoted, Source.PROMOTED),
        )
        sold = self._units_sold(catalog)[rows]
        gone = catalog.in_stock["stock"][rows].astype(float) - sold <= 0
        rows, sold, reasons = rows[~gone], sold[~gone], reasons[~gone]
        if rows.size == 0:
            return RecommendResult([], fallback="popular", model_version=champion.version, notes=["nothing in stock"])
        scores = self._purchase_probabilities(
            champion, catalog, rows, user_id, user, affinity, channel, now, fresh, sold
        )
        bought = log.cycles.bought_within(past, stamp, rules.exclude_bought_within_days) if log is not None else set()
        items = apply_rules(self._scored(catalog, rows, scores, reasons), rules, k, bought, set(due))
        if tier is not None:  # the playbook's picks say whose strategy put them there
            for item in items:
                if item.reason in STRATEGY_REASONS:
                    item.reason = f"{item.reason} for {tier} customers"
        return RecommendResult(
            items,
            candidates=rows.size,
            tier=tier,
            model_version=champion.version,
            notes=notes,
            intent=suggestions.intent,
            sequence_model_version=suggestions.model_version,
        )

    def rerank(
        self, user_id: str, item_ids: list[str], channel: str = "mini_program", now: datetime | None = None
    ) -> RecommendResult:
        """The caller's candidates (distinct ids) best first for the user, by the conversion model.

        Items the catalogue does not hold in stock cannot be scored: they follow the ranked ones in the
        caller's order with score 0 and a reason saying why. A user the store does not know is still
        ranked (the model takes its missing-value branches for their features); with the online store
        down the caller's order comes back, flagged degraded.
        """
        catalog, champion = self.catalog, self.champion
        rows = catalog.rows.get_indexer(item_ids)
        unranked = [
            Recommendation(item, 0.0, Source.NOT_IN_STOCK if item in catalog.facts else Source.UNKNOWN_ITEM)
            for item, row in zip(item_ids, rows, strict=True)
            if row < 0
        ]
        rows = rows[rows >= 0]
        try:
            user, affinity = self.breaker.call(lambda: self.online_rows(user_id, catalog.categories))
        except Exception as exc:  # the caller's own order is a sound answer without the store
            kept = [Recommendation(str(i), 0.0, Source.CALLER_ORDER) for i in catalog.in_stock["item_id"][rows]]
            return RecommendResult(
                kept + unranked,
                fallback="caller_order",
                degraded=True,
                notes=[f"online store unavailable: {type(exc).__name__}"],
            )
        notes = [] if affinity is not None else ["unknown user: ranked by item features alone"]
        if affinity is None:
            affinity = CategoryEngagement.none()
        scores = np.empty(0)
        if rows.size:
            fresh = self.fresh.by_user.get(user_id)
            scores = self._purchase_probabilities(champion, catalog, rows, user_id, user, affinity, channel, now, fresh)
        best = np.argsort(-scores, kind="stable")
        ranked = [
            Recommendation(str(catalog.in_stock["item_id"][rows[i]]), float(scores[i]), Source.RANKED) for i in best
        ]
        return RecommendResult(ranked + unranked, tier=tier_of(user), model_version=champion.version, notes=notes)

    def suggest(self, user_id: str, fresh: pd.DataFrame | None = None) -> PathSuggestions:
        """What the user's path proposes; with `fresh` events (stored since the index), from the path through them."""
        log = self.log
        if log is None:
            return PathSuggestions()
        if fresh is None:
            return log.paths.suggest(user_id, PATH_CANDIDATES)
        path = log.recent.path_with(user_id, fresh)
        return log.paths.suggest_for(path, PATH_CANDIDATES) if path is not None else PathSuggestions()

    def _purchase_probabilities(
        self,
        champion: ConversionChampion,
        catalog: Catalog,
        rows: np.ndarray,
        user_id: str,
        user: dict[str, float | None],
        affinity: CategoryEngagement,
        channel: str,
        now: datetime | None,
        fresh: pd.DataFrame | None = None,
        sold: np.ndarray | None = None,
    ) -> np.ndarray:
        """The conversion model's P(purchase) for each candidate row, shown at today's price on `channel`.

        `sold`: the rows' units sold since their stock count, when the caller has already read them.
        """
        now = now or datetime.now(UTC)
        items = {name: values[rows] for name, values in catalog.in_stock.items()}
        histories = self.histories
        if histories is not None:
            codes = (items["category_code"], catalog.category_code)
            found = histories.features(user_id, (rows, catalog.row_of), codes, now, fresh)
        else:  # no log read yet: LightGBM takes its missing-value branches
            found = np.full((rows.size, len(BEHAVIOUR_FEATURES)), np.nan)
        behaviour = dict(zip(BEHAVIOUR_FEATURES, found.T, strict=True))
        sold = self._units_sold(catalog)[rows] if sold is None else sold
        behaviour.update(live_stock_columns(items["stock"], sold))
        engagement = affinity.per_candidate(items["category_code"])
        matrix = candidate_matrix(champion.features, items, user, engagement, behaviour, channel, now)
        return champion.predict(matrix)

    def _units_sold(self, catalog: Catalog) -> np.ndarray:
        """(in-stock rows,) units sold since each item's stock count; an item with none left is not proposed."""
        log = self.log
        return self.sales.units(catalog, log.sales if log is not None else None, self.fresh)


def _item_files(settings: Settings) -> tuple[tuple[int, int] | None, ...]:
    """The versions of the files the catalogue is read from (item snapshots, item attributes)."""
    return _stat(source_paths(settings)[ITEM_VIEW]), _stat(item_meta_path(settings))


def _stat(path: Path) -> tuple[int, int] | None:
    """(size, modification time) of a file, as the views' version records it; None when it is missing."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns
