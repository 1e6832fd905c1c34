"""The BentoML service: /recommend, /rerank, /events, /similar, /bought-together, /price, plus BentoML's
/healthz, /livez, /readyz and /metrics.

Configuration comes from `SIYU_*` environment variables (see siyu/settings.py), so the same
service runs on the embedded SQLite store or on Redis without code changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import TypeVar

import bentoml
import pandas as pd
import torch
from bentoml.exceptions import BentoMLException

from serving.api.api_key import ApiKeyMiddleware
from serving.api.contract import ApiContract
from serving.api.models import (
    BoughtTogetherRequest,
    EventsRequest,
    EventsResponse,
    IdentityLinkIn,
    ItemOut,
    RecommendRequest,
    RecommendResponse,
    RefusedEventOut,
    RelatedResponse,
    RerankRequest,
    RerankResponse,
    SimilarRequest,
    UserRef,
)
from serving.api.pricing import Pricer, PriceRequest, PriceResponse, PricingInputError
from serving.api.request_guard import RequestGuard
from serving.bento import pinned_versions
from serving.recommend.catalog import Catalog, Recommendation
from serving.recommend.item_to_item import UnknownItems
from serving.recommend.ranker import Ranker, RecommendResult, StoredEvents
from siyu.data.ingest import ingest_events
from siyu.settings import Settings, get_settings


class UnpriceableRequest(BentoMLException):
    """A well-formed pricing request that cannot be priced: conflicting rules, no price left, no demand model."""

    error_code = HTTPStatus.UNPROCESSABLE_ENTITY


class ItemNotFound(BentoMLException):
    """An item id neither the item table nor the event log knows (the message names it)."""

    error_code = HTTPStatus.NOT_FOUND


def _items(recommendations: list[Recommendation], catalog: Catalog) -> list[ItemOut]:
    facts = catalog.facts
    out = []
    for r in recommendations:
        known = facts.get(r.item_id)
        out.append(
            ItemOut(
                item_id=r.item_id,
                score=r.score,
                reason=r.reason,
                category_id=known.category_id if known else None,
                price=known.price if known else None,
                in_stock=known.in_stock if known else False,
            )
        )
    return out


Personal = TypeVar("Personal", RecommendResponse, RerankResponse)


def _personal(
    response: type[Personal], user_id: str, result: RecommendResult, catalog: Catalog, **extra: object
) -> Personal:
    """An answer about one user: the ranked items with their facts, and how they were ranked."""
    return response(
        recommendation_id=_new_id(),
        user_id=user_id,
        items=_items(result.items, catalog),
        fallback=result.fallback,
        degraded=result.degraded,
        model_version=result.model_version,
        notes=result.notes,
        tier=result.tier,
        **extra,
    )


def _links_frame(links: list[IdentityLinkIn]) -> pd.DataFrame:
    """The request's identity links as rows of the links table, stamped now."""
    rows = pd.DataFrame([link.model_dump() for link in links])
    return rows.assign(link_time=pd.Timestamp.now(tz="UTC"))


def service_settings() -> Settings:
    """The environment's settings, plus the model versions a Bento was built with (SIYU_PINNED_VERSIONS wins)."""
    settings = get_settings()
    pins = pinned_versions(Path(__file__).parent)
    if pins and not settings.pinned_versions:
        settings = settings.model_copy(update={"pinned_versions": pins})
    return settings


def _new_id() -> str:
    return uuid.uuid4().hex


def request_tracing(settings: Settings) -> dict[str, object]:
    """BentoML's tracing config: every path left out of OpenTelemetry spans unless SIYU_TRACE_REQUESTS is on."""
    return {} if settings.trace_requests else {"excluded_urls": [".*"]}


# Each worker is a process with its own models: with one, requests queued behind each other on one core.
@bentoml.service(
    name="siyu", workers=get_settings().workers, traffic={"timeout": 30}, tracing=request_tracing(get_settings())
)
class Siyu:
    def __init__(self) -> None:
        # A worker is one process per core; torch ops spreading over every core set the workers' threads waiting
        # on each other (10 clients: 219 rps with torch's default, against 258 rps for one client).
        torch.set_num_threads(1)
        settings = service_settings()
        self.settings = settings
        self.ranker = Ranker(settings)
        self.pricer = Pricer(settings)  # the demand model is loaded here, never on the request path

    # /recommend and /rerank rank on the event loop itself: they are CPU-bound and a worker ranks one request
    # at a time either way, so handing each to a thread only added the hand-off and the GIL passing back and
    # forth with the loop (c1 p50 7.2 ms instead of 8.1 ms on the benchmark world). The other endpoints wait
    # on disk or a solver and keep their thread.
    @bentoml.api(route="/recommend")
    async def recommend(self, request: RecommendRequest, /) -> RecommendResponse:
        """Personalised "guess you like": k in-stock items ranked by predicted purchase probability.

        Name the user by `user_id`, or by any identifier the app holds (`user_key` + `user_key_type`).
        Candidates: the decision-path model's likely next items, items co-occurring with the user's recent
        steps, and the most popular in-stock items; each item's `reason` names the source that proposed it.
        """
        user_id = self._user_id(request)
        catalog = self.ranker.catalog
        result = self.ranker.recommend(user_id, request.k, request.channel, rules=request.rules)
        return _personal(
            RecommendResponse,
            user_id,
            result,
            catalog,
            intent=result.intent,
            sequence_model_version=result.sequence_model_version,
        )

    @bentoml.api(route="/rerank")
    async def rerank(self, request: RerankRequest, /) -> RerankResponse:
        """The caller's candidate list (up to 500 ids) ranked for the user by predicted purchase probability.

        Every id comes back once: the in-stock ones ranked, then those that cannot be scored (out of
        stock, unknown) in the caller's order with score 0 and a reason. With the online store down the
        caller's order comes back with `degraded: true`.
        """
        user_id = self._user_id(request)
        catalog = self.ranker.catalog
        result = self.ranker.rerank(user_id, request.item_ids, request.channel)
        return _personal(RerankResponse, user_id, result, catalog)

    def _user_id(self, request: UserRef) -> str:
        """The unified id the request names, directly or by an identifier the app holds."""
        if request.user_id is not None:
            return request.user_id
        return self.ranker.resolve(request.user_key_type, request.user_key).user_id

    @bentoml.api(route="/events")
    def events(self, request: EventsRequest, /) -> EventsResponse:
        """Real-time events, up to 1,000 per batch, by any user identifier: stored before the answer, then
        counted in that user's next /recommend (their path, intent and history features), and pushed into
        their online features (RFM, activity, category engagement) through the feature store's push sources.

        Each event is checked on its own: bad ones come back in `refused` with every reason, the good ones
        of the same batch are stored. Idempotent on `event_id`: a retried batch is not counted twice.
        `links` (identifiers learned to be one person, e.g. at a login) are merged into the identity map
        first: from then on both identifiers get the same user's recommendations.
        """
        linked = self.ranker.merge_identities(_links_frame(request.links)) if request.links else []
        batch = [event.model_dump(exclude={"event_id"}) for event in request.events]
        ids = [event.event_id for event in request.events]
        result = ingest_events(self.settings, batch, ids, datetime.now(UTC))
        counted = self.ranker.add_stored(result.part, result.stored) if result.part else StoredEvents([])
        return EventsResponse(
            stored=len(result.stored),
            duplicates=result.duplicates,
            refused=[RefusedEventOut(index=r.index, event_id=r.event_id, reasons=r.reasons) for r in result.refused],
            users=counted.users,
            features_updated=counted.features_updated,
            notes=counted.notes,
            linked_users=linked,
        )

    @bentoml.api(route="/similar")
    def similar(self, request: SimilarRequest, /) -> RelatedResponse:
        """Items like this one: touched by the same users (viewed together), then its category's best sellers.

        404 naming the id when neither the item table nor the event log knows the item.
        """
        return self._related(
            lambda: self.ranker.similar(request.item_id, request.k, request.in_stock_only), [request.item_id]
        )

    @bentoml.api(route="/bought-together")
    def bought_together(self, request: BoughtTogetherRequest, /) -> RelatedResponse:
        """Items that go with a basket: bought by the same buyers, then viewed together, then same category.

        404 naming the ids when any basket item is unknown to both the item table and the event log.
        """
        ranker = self.ranker
        return self._related(
            lambda: ranker.bought_together(request.item_ids, request.k, request.in_stock_only), request.item_ids
        )

    def _related(self, answer: Callable[[], list[Recommendation]], asked: list[str]) -> RelatedResponse:
        """An item-to-item answer with its facts, or a 404 naming the ids nobody knows."""
        catalog = self.ranker.catalog
        try:
            found = answer()
        except UnknownItems as exc:
            raise ItemNotFound(str(exc)) from exc
        return RelatedResponse(
            recommendation_id=_new_id(),
            model_version=self.ranker.related_version,
            items=_items(found, catalog),
            asked=asked,
        )

    @bentoml.api(route="/price")
    def price(self, request: PriceRequest, /) -> PriceResponse:
        """Inventory-aware price schedules for up to 1,000 SKUs (needs the `X-API-Key` header).

        Per SKU: the price to set now, the expected schedule, expected units / revenue / margin /
        sell-through / waste, the same figures for holding today's price, the rules that bound
        the price, and the gap to the fluid upper bound. Prices vary by SKU and time, never by user.
        """
        try:
            return self.pricer.price(request)
        except PricingInputError as exc:
            raise UnpriceableRequest(str(exc)) from exc


# Starlette runs middleware in the order added: the contract (one error shape, a true /docs.json) wraps all;
# the key check refuses a stranger before their body is read; the guard keeps oversized and non-JSON bodies
# from BentoML's parsers.
Siyu.add_asgi_middleware(ApiContract, spec=Siyu.openapi_spec)
Siyu.add_asgi_middleware(ApiKeyMiddleware, key=get_settings().api_key)
Siyu.add_asgi_middleware(RequestGuard, max_body_bytes=get_settings().max_body_bytes)
