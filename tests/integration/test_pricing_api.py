"""POST /price over HTTP on the real server: the key, the schedule, the rules, and every kind of bad input."""

from __future__ import annotations

import itertools

import httpx
import pytest

from pricing.demand.registry import load_champion
from siyu.settings import Settings
from siyu.tracking import CHAMPION, alias_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _post(server, body: object, key: str | None = "default", **headers: str) -> httpx.Response:
    base, settings = server
    if key == "default":
        key = settings.api_key
    if key is not None:
        headers["X-API-Key"] = key
    return httpx.post(f"{base}/price", json=body, headers=headers, timeout=60)


def _known_item(settings: Settings) -> str:
    model, _ = load_champion(settings)
    return str(model.skus.index[0])


def _sku(item_id: str, **extra: object) -> dict:
    return {"item_id": item_id, "stock": 20, "cost": 10.0, "current_price": 25.0, "salvage_value": 4.0, **extra}


def test_the_key_is_required_and_checked(server) -> None:
    body = {"skus": [_sku("x")], "horizon": 7}
    missing = _post(server, body, key=None)
    assert missing.status_code == 401 and "X-API-Key" in missing.json()["error"]
    wrong = _post(server, body, key="not-the-key")
    assert wrong.status_code == 403
    assert "not-the-key" not in wrong.text


def test_price_returns_a_schedule_and_the_hold_price_what_if(server) -> None:
    _, settings = server
    item = _known_item(settings)
    response = _post(server, {"skus": [_sku(item)], "horizon": 14})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["demand_model_version"] == alias_version(settings, settings.demand_model_name, CHAMPION)
    (sku,) = body["items"]
    assert sku["item_id"] == item and len(sku["schedule"]) == 14
    assert sku["price_now"] >= 10.0  # default rule: never below cost
    assert sku["optimal"]["expected_value"] >= sku["hold_current_price"]["expected_value"] - 1e-6
    assert sku["fluid_bound"] >= sku["optimal"]["expected_value"] - 1e-6
    assert 0 <= sku["optimal"]["sell_through"] <= 1 and sku["notes"] == []
    stock = [p["expected_stock"] for p in sku["schedule"]]
    assert stock[0] == 20 and all(a >= b - 1e-9 for a, b in itertools.pairwise(stock))


def test_rules_bind_and_are_named(server) -> None:
    """With far more stock than the horizon sells, a constant-elasticity curve puts the unconstrained best price
    at an end of the ladder, so a floor-to-ceiling band in the middle must bind on one side."""
    _, settings = server
    item = _known_item(settings)
    sku = _sku(item, stock=5000, rules={"floor": 20.0, "ceiling": 22.0})
    response = _post(server, {"skus": [sku], "horizon": 7, "rules": {"min_margin": 0.1}})
    assert response.status_code == 200, response.text
    (priced,) = response.json()["items"]
    assert 20.0 - 1e-9 <= priced["price_now"] <= 22.0 + 1e-9
    assert set(priced["binding_rules"]) & {"floor", "ceiling"}


def test_an_unseen_sku_gets_its_category_prior_and_a_note(server) -> None:
    response = _post(server, {"skus": [_sku("never-sold-before", category_id="c00")], "horizon": 7})
    assert response.status_code == 200, response.text
    assert any("unknown to the demand model" in n for n in response.json()["items"][0]["notes"])


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"skus": [_sku("a", stock=-1)], "horizon": 7}, "stock"),
        ({"skus": [_sku("a", cost="NaN")], "horizon": 7}, "cost"),
        ({"skus": [_sku("a")], "horizon": 0}, "horizon"),
        ({"skus": [_sku("a")], "horizon": 366}, "horizon"),
        ({"skus": [_sku("a", colour="red")], "horizon": 7}, "colour"),
        ({"skus": [_sku("a")], "horizon": 7, "discount": 1}, "discount"),
        ({"skus": [_sku(f"i{i}") for i in range(1001)], "horizon": 7}, "skus"),
        ({"skus": [], "horizon": 7}, "skus"),
        ({"skus": [_sku("a", rules={"floor": 30.0, "ceiling": 20.0})], "horizon": 7}, "floor"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(server, body: dict, needle: str) -> None:
    response = _post(server, body)
    assert 400 <= response.status_code < 500, response.text
    assert needle in response.text


def test_broken_json_is_a_4xx(server) -> None:
    base, settings = server
    response = httpx.post(
        f"{base}/price",
        content=b'{"skus": [',
        headers={"content-type": "application/json", "X-API-Key": settings.api_key},
        timeout=30,
    )
    assert 400 <= response.status_code < 500
