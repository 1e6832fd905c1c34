"""The BentoML service: /recommend plus health endpoints (BentoML adds /healthz, /livez, /readyz, /metrics).

Configuration comes from `SIYU_*` environment variables (see siyu/settings.py), so the same
service runs on the embedded SQLite store or on Redis without code changes.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Literal

import bentoml
from bentoml.exceptions import BentoMLException
from pydantic import BaseModel, Field

from serving.api_key import ApiKeyMiddleware
from serving.pricing_api import Pricer, PriceRequest, PriceResponse, PricingInputError
from serving.ranker import Ranker
from siyu.settings import get_settings

Channel = Literal["mini_program", "app", "pos", "wecom", "web"]


class RecommendedItem(BaseModel):
    item_id: str
    score: float = Field(description="predicted purchase probability, or recent units sold for fallbacks")
    reason: str


class RecommendResponse(BaseModel):
    user_id: str
    items: list[RecommendedItem]
    fallback: Literal["popular"] | None = Field(None, description="set when the ranking model was not used")
    degraded: bool = Field(
        False, description="true when a dependency (the online store) failed and a fallback answered"
    )
    model_version: str | None = Field(None, description="version of the conversion model that ranked the items")
    intent: float | None = Field(
        None,
        ge=0,
        le=1,
        description="decision-path model's probability that the user's latest session ends in a purchase"
        " (null when no sequence model is registered or the user has no stored events)",
    )
    sequence_model_version: str | None = Field(
        None, description="version of the decision-path model that read the path"
    )
    notes: list[str] = Field(default_factory=list, description="why a fallback answered, when one did")


class UnpriceableRequest(BentoMLException):
    """A well-formed pricing request that cannot be priced: conflicting rules, no price left, no demand model."""

    error_code = HTTPStatus.UNPROCESSABLE_ENTITY


@bentoml.service(name="siyu", traffic={"timeout": 30})
class Siyu:
    def __init__(self) -> None:
        settings = get_settings()
        self.ranker = Ranker(settings)
        self.pricer = Pricer(settings)  # the demand model is loaded here, never on the request path

    @bentoml.api(route="/recommend")
    def recommend(
        self,
        user_id: Annotated[str, Field(min_length=1, max_length=128, description="unified user id")],
        k: Annotated[int, Field(ge=1, le=100, description="how many items to return")] = 10,
        channel: Channel = "mini_program",
    ) -> RecommendResponse:
        """Personalised "guess you like": k in-stock items ranked by predicted purchase probability.

        Candidates: the decision-path model's likely next items, items co-occurring with the user's recent
        steps, and the most popular in-stock items; each item's `reason` names the source that proposed it.
        """
        result = self.ranker.recommend(user_id, k, channel)
        return RecommendResponse(
            user_id=user_id,
            items=[RecommendedItem(item_id=r.item_id, score=r.score, reason=r.reason) for r in result.items],
            fallback=result.fallback,
            degraded=result.degraded,
            model_version=result.model_version,
            intent=result.intent,
            sequence_model_version=result.sequence_model_version,
            notes=result.notes,
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


# The key is read once when the service is imported; it is compared in constant time and never logged.
Siyu.add_asgi_middleware(ApiKeyMiddleware, key=get_settings().api_key)
