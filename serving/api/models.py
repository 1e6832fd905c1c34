"""Request and response bodies of the recommendation endpoints, kept free of BentoML.

A user may be named by the unified `user_id` or by any identifier an app holds (`user_key` with its
`user_key_type`: a mini-program openid, a device id, a member id, a phone hash); both resolve to the
same person. Every response carries a `recommendation_id` (to join later clicks and orders to what was
shown), the model version that produced it, and per item a score, a reason and the facts an app shows.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from serving.recommend.rules import Rules
from siyu.data.schema import USER_KEY_TYPES

Channel = Literal["mini_program", "app", "pos", "wecom", "web"]
UserKeyType = Literal[USER_KEY_TYPES]  # type: ignore[valid-type]
ItemId = Annotated[str, Field(min_length=1, max_length=128)]
ItemIds = Annotated[list[ItemId], AfterValidator(lambda ids: list(dict.fromkeys(ids)))]  # repeats count once
MAX_BASKET = 50


class UserRef(BaseModel):
    """Exactly one of: `user_id`, or `user_key` with `user_key_type`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [{"required": ["user_id"]}, {"required": ["user_key", "user_key_type"]}]},
    )

    user_key: str | None = Field(
        None, min_length=1, max_length=128, description="an identifier the app holds (needs user_key_type)"
    )
    user_key_type: UserKeyType | None = Field(
        None, validate_default=True, description="what kind of identifier user_key is"
    )
    user_id: str | None = Field(
        None, min_length=1, max_length=128, validate_default=True, description="unified user id"
    )

    @field_validator("user_key_type")
    @classmethod
    def _key_has_a_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (value is None) != (info.data.get("user_key") is None):
            raise ValueError("user_key and user_key_type go together: give both or neither")
        return value

    @field_validator("user_id")
    @classmethod
    def _one_way_to_name_the_user(cls, value: str | None, info: ValidationInfo) -> str | None:
        keyed = info.data.get("user_key") is not None
        if value is None and not keyed:
            raise ValueError("name the user: give user_id, or user_key with user_key_type")
        if value is not None and keyed:
            raise ValueError("give user_id or user_key, not both")
        return value


class RecommendRequest(UserRef):
    k: int = Field(10, ge=1, le=100, description="how many items to return")
    channel: Channel = "mini_program"
    rules: Rules = Field(default_factory=Rules, description="filters, diversity, promotion and exploration slots")


class ItemOut(BaseModel):
    item_id: str
    score: float = Field(description="purchase probability, similarity, or recent units sold, as `reason` says")
    reason: str = Field(description="which source proposed the item, in words an app may show")
    category_id: str | None = None
    price: float | None = Field(None, description="today's price (yuan)")
    in_stock: bool


class Answer(BaseModel):
    recommendation_id: str = Field(description="unique per response: log it with what the user does next")
    model_version: str | None = Field(None, description="version of the model or index that ranked the items")
    items: list[ItemOut]


class PersonalAnswer(Answer):
    """What every answer about one user says besides the items."""

    user_id: str = Field(description="the unified user id the request resolved to")
    degraded: bool = Field(
        False, description="true when a dependency (the online store) failed and a fallback answered"
    )
    notes: list[str] = Field(default_factory=list, description="why a fallback answered, when one did")
    tier: str | None = Field(None, description="the user's value tier (core/potential/silent)")


class RecommendResponse(PersonalAnswer):
    fallback: Literal["popular"] | None = Field(None, description="set when the ranking model was not used")
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


MAX_RERANK = 500


class RerankRequest(UserRef):
    item_ids: ItemIds = Field(min_length=1, max_length=MAX_RERANK, description="the caller's candidates")
    channel: Channel = "mini_program"


class RerankResponse(PersonalAnswer):
    fallback: Literal["caller_order"] | None = Field(
        None, description="set when the online store was down and the caller's order came back"
    )


class SimilarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: ItemId
    k: int = Field(10, ge=1, le=100)
    in_stock_only: bool = True


class BoughtTogetherRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_ids: ItemIds = Field(min_length=1, max_length=MAX_BASKET, description="the basket")
    k: int = Field(10, ge=1, le=100)
    in_stock_only: bool = True


class RelatedResponse(Answer):
    asked: list[str] = Field(description="the item ids the answer is about")


MAX_EVENTS = 1000


class EventIn(BaseModel):
    """One event in the event schema. Structure is checked here (a 400 for the whole batch); meaning
    (vocabularies, quantities, timestamps) per event, so one bad event never costs the good ones."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        min_length=1, max_length=128, description="unique per event: a retried batch with the same ids counts once"
    )
    event_time: str = Field(min_length=1, max_length=64, description="ISO 8601; no timezone means UTC")
    user_key: str = Field(min_length=1, max_length=128, description="any identifier: openid, device id, member id")
    user_key_type: str = Field(min_length=1, max_length=32, description=f"one of {', '.join(USER_KEY_TYPES)}")
    event_type: str = Field(min_length=1, max_length=32, description="view, add_to_cart, purchase, ...")
    item_id: str | None = Field(None, min_length=1, max_length=128, description="required unless search/store_visit")
    channel: str = Field("mini_program", min_length=1, max_length=32)
    store_id: str | None = Field(None, max_length=128)
    quantity: int = Field(1, description="units; must be >= 0")
    unit_price: float | None = Field(None, allow_inf_nan=False, description="yuan; must be >= 0")
    session_id: str = Field(min_length=1, max_length=128)


class IdentityLinkIn(BaseModel):
    """Two identifiers the app has just seen belong to one person (a mini-program login binding an openid to a
    member id, a phone number given at the till): merged into the identity map before the batch's events."""

    model_config = ConfigDict(extra="forbid")

    key_type_a: UserKeyType
    key_a: str = Field(min_length=1, max_length=128)
    key_type_b: UserKeyType
    key_b: str = Field(min_length=1, max_length=128)

    @field_validator("key_b")
    @classmethod
    def _two_identifiers(cls, value: str, info: ValidationInfo) -> str:
        if (info.data.get("key_type_a"), info.data.get("key_a")) == (info.data.get("key_type_b"), value):
            raise ValueError("a link joins two different identifiers; both sides name the same one")
        return value


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)
    links: list[IdentityLinkIn] = Field(
        default_factory=list, max_length=MAX_EVENTS, description="identifiers learned to be one person"
    )


class RefusedEventOut(BaseModel):
    index: int = Field(description="position in the batch")
    event_id: str
    reasons: list[str]


class EventsResponse(BaseModel):
    stored: int = Field(description="events written to the event log before this answer")
    duplicates: list[str] = Field(description="event ids stored before: not counted again")
    refused: list[RefusedEventOut] = Field(description="events not stored, each with every reason")
    users: list[str] = Field(description="unified user ids of the stored events' people")
    features_updated: int = Field(
        0,
        description="of those users, how many had their online features (RFM, activity, category engagement)"
        " updated through the feature store's push sources before this answer",
    )
    notes: list[str] = Field(default_factory=list, description="why online features were not updated, if they were not")
    linked_users: list[str] = Field(
        default_factory=list, description="for each link, the unified user id both its identifiers now resolve to"
    )
