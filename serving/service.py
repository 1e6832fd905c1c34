"""The BentoML service: /recommend plus health endpoints (BentoML adds /healthz, /livez, /readyz, /metrics).

Configuration comes from `SIYU_*` environment variables (see siyu/settings.py), so the same
service runs on the embedded SQLite store or on Redis without code changes.
"""

from __future__ import annotations

from typing import Annotated, Literal

import bentoml
from pydantic import BaseModel, Field

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
    model_version: str | None = None
    notes: list[str] = Field(default_factory=list, description="why a fallback answered, when one did")


@bentoml.service(name="siyu", traffic={"timeout": 30})
class Siyu:
    def __init__(self) -> None:
        self.ranker = Ranker(get_settings())

    @bentoml.api(route="/recommend")
    def recommend(
        self,
        user_id: Annotated[str, Field(min_length=1, max_length=128, description="unified user id")],
        k: Annotated[int, Field(ge=1, le=100, description="how many items to return")] = 10,
        channel: Channel = "mini_program",
    ) -> RecommendResponse:
        """Personalised "guess you like": k in-stock items ranked by predicted purchase probability."""
        result = self.ranker.recommend(user_id, k, channel)
        return RecommendResponse(
            user_id=user_id,
            items=[RecommendedItem(item_id=r.item_id, score=r.score, reason=r.reason) for r in result.items],
            fallback=result.fallback,
            degraded=result.degraded,
            model_version=result.model_version,
            notes=result.notes,
        )
