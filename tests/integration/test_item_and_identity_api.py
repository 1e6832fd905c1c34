"""/recommend by any identifier, /rerank, /similar and /bought-together, over HTTP on the real trained system."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from serving.recommend.catalog import latest_item_table
from siyu.data import schema
from siyu.data.store import read_table
from siyu.settings import Settings
from tests.conftest import known_user

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _person_with_two_identifiers(settings: Settings) -> pd.DataFrame:
    """The identity-map rows of the busiest person known by an openid and a member id."""
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    kinds = identity.groupby("user_id")["user_key_type"].agg(set)
    both = kinds[kinds.map(lambda k: {"openid", "member_id"} <= k)].index
    events = read_table(settings.events_dir, schema.EVENT_SCHEMA).merge(identity, on=["user_key_type", "user_key"])
    busiest = events[events["user_id"].isin(both)]["user_id"].value_counts().index[0]
    return identity[identity["user_id"] == busiest]


def _post(base: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{base}{path}", json=body, timeout=30)


def test_an_openid_and_a_member_id_of_one_person_get_the_same_recommendations(server) -> None:
    base, settings = server
    person = _person_with_two_identifiers(settings)
    user_id = person["user_id"].iloc[0]
    answers = [_post(base, "/recommend", {"user_id": user_id, "k": 8})]
    for kind in ("openid", "member_id"):
        key = person.loc[person["user_key_type"] == kind, "user_key"].iloc[0]
        answers.append(_post(base, "/recommend", {"user_key": key, "user_key_type": kind, "k": 8}))

    bodies = [a.json() for a in answers]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert {b["user_id"] for b in bodies} == {user_id}
    assert len({tuple(i["item_id"] for i in b["items"]) for b in bodies}) == 1
    assert bodies[0]["fallback"] is None
    assert len({b["recommendation_id"] for b in bodies}) == 3


def test_an_identifier_never_seen_is_a_new_person_with_popular_items(server) -> None:
    base, _ = server
    body = _post(base, "/recommend", {"user_key": "o-brand-new", "user_key_type": "openid", "k": 3}).json()
    assert body["fallback"] == "popular" and body["user_id"].startswith("U") and len(body["items"]) == 3


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"user_key": "abc"}, "user_key_type"),
        ({"user_key": "abc", "user_key_type": "passport"}, "user_key_type"),
        ({"user_id": "u1", "user_key": "abc", "user_key_type": "openid"}, "user_id"),
        ({"user_id": "u1", "colour": "red"}, "colour"),
    ],
)
def test_a_user_named_wrongly_gets_a_4xx_naming_the_field(server, payload: dict, field: str) -> None:
    base, _ = server
    response = _post(base, "/recommend", payload)
    assert response.status_code == 400, response.text
    assert field in {loc for err in response.json()["detail"] for loc in err["loc"]}


def test_items_carry_their_facts(server) -> None:
    base, _ = server
    items = _post(base, "/recommend", {"user_id": "nobody", "k": 5}).json()["items"]
    assert all(i["in_stock"] and i["category_id"] and i["price"] > 0 for i in items)


def _busiest_items(settings: Settings, n: int) -> list[str]:
    events = read_table(settings.events_dir, schema.EVENT_SCHEMA)
    bought = events[events["event_type"] == "purchase"]
    return bought["item_id"].value_counts().index[:n].tolist()


def test_similar_items_are_neighbours_of_the_item_and_never_the_item(server) -> None:
    base, settings = server
    item = _busiest_items(settings, 1)[0]
    response = _post(base, "/similar", {"item_id": item, "k": 6})

    assert response.status_code == 200, response.text
    body = response.json()
    ids = [i["item_id"] for i in body["items"]]
    assert len(ids) == 6 and item not in ids and len(set(ids)) == 6
    assert all(i["reason"] == f"viewed together with {item}" for i in body["items"])
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert body["asked"] == [item] and body["model_version"].startswith("co-occurrence@")


def test_bought_together_answers_a_basket_without_repeating_it(server) -> None:
    base, settings = server
    basket = _busiest_items(settings, 2)
    body = _post(base, "/bought-together", {"item_ids": basket, "k": 5}).json()

    ids = [i["item_id"] for i in body["items"]]
    assert len(ids) == 5 and not set(ids) & set(basket)
    assert body["items"][0]["reason"] in {f"bought together with {b}" for b in basket}


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/similar", {"item_id": "no-such-item"}, "'no-such-item'"),
        ("/bought-together", {"item_ids": ["no-such-item", "nor-this"]}, "'no-such-item', 'nor-this'"),
    ],
)
def test_an_unknown_item_is_a_404_naming_it(server, path: str, body: dict, named: str) -> None:
    base, _ = server
    response = _post(base, path, body)
    assert response.status_code == 404, response.text
    assert named in response.text


def test_rerank_orders_the_callers_items_as_recommend_scores_them_and_returns_every_id_once(server) -> None:
    base, settings = server
    user = known_user(settings)
    shown = _post(base, "/recommend", {"user_id": user, "k": 8}).json()["items"]
    asked = [i["item_id"] for i in reversed(shown)] + ["no-such-item", shown[0]["item_id"]]
    response = _post(base, "/rerank", {"user_id": user, "item_ids": asked})

    assert response.status_code == 200, response.text
    body = response.json()
    ranked, unranked = body["items"][:-1], body["items"][-1]
    assert [i["score"] for i in ranked] == sorted((i["score"] for i in ranked), reverse=True)
    # the same model, features and price as /recommend: the same purchase probabilities
    assert {i["item_id"]: round(i["score"], 6) for i in ranked} == {i["item_id"]: round(i["score"], 6) for i in shown}
    assert all(i["reason"] == "ranked for this user by purchase probability" for i in ranked)
    assert unranked == {
        "item_id": "no-such-item",
        "score": 0.0,
        "reason": "not ranked: unknown to the item table",
        "category_id": None,
        "price": None,
        "in_stock": False,
    }
    assert body["user_id"] == user and body["fallback"] is None and body["model_version"]


def test_rerank_of_an_out_of_stock_item_says_so(server) -> None:
    base, settings = server
    table = latest_item_table(settings)
    gone = table.loc[~table["in_stock"], "item_id"].astype(str).tolist()
    if not gone:
        pytest.skip("every item of this world is in stock")
    in_stock = table.loc[table["in_stock"], "item_id"].astype(str).iloc[0]
    body = _post(base, "/rerank", {"user_id": "nobody-yet", "item_ids": [gone[0], in_stock]}).json()

    assert [i["item_id"] for i in body["items"]] == [in_stock, gone[0]]
    assert body["items"][1]["reason"] == "not ranked: out of stock" and body["items"][1]["in_stock"] is False
    assert body["notes"] == ["unknown user: ranked by item features alone"] and body["items"][0]["score"] > 0
