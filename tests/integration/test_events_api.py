"""POST /events over HTTP on a copy of the trained system: stored before answered, once, per-event refusals,
and the next /recommend of the user reflects the events (in every worker process)."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest

from features import repo
from features.build import USER_FEATURES
from features.online_rows import OnlineRows
from features.push import held_rows
from serving.local.launcher import running_server
from serving.local.redis_process import own_redis
from siyu.data import schema
from siyu.data.store import read_table
from siyu.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _openid_user(settings: Settings) -> tuple[str, str]:
    """(openid, unified user id) of the busiest person known by an openid."""
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    events = read_table(settings.events_dir, schema.EVENT_SCHEMA).merge(identity, on=["user_key_type", "user_key"])
    openids = events[events["user_key_type"] == "openid"]
    row = openids.groupby(["user_key", "user_id"]).size().idxmax()
    return str(row[0]), str(row[1])


def _events(openid: str, items: list[str], prefix: str, **changes: object) -> list[dict]:
    start = datetime.now(UTC) - timedelta(minutes=5)
    steps = [(item, "view") for item in items] + [(items[-1], "add_to_cart"), (items[-1], "purchase")]
    return [
        {
            "event_id": f"{prefix}-{n}",
            "event_time": (start + timedelta(seconds=10 * n)).isoformat(),
            "user_key": openid,
            "user_key_type": "openid",
            "item_id": item,
            "event_type": kind,
            "channel": "mini_program",
            "quantity": 1,
            "unit_price": 19.9,
            "session_id": f"{prefix}-session",
        }
        | changes
        for n, (item, kind) in enumerate(steps)
    ]


def _recommend(base: str, user_id: str) -> dict:
    response = httpx.post(f"{base}/recommend", json={"user_id": user_id, "k": 10}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _stored_count(settings: Settings) -> int:
    return len(read_table(settings.events_dir, schema.EVENT_SCHEMA))


def test_events_are_stored_once_and_change_the_users_next_recommendation(scratch_server) -> None:
    base, settings = scratch_server
    openid, user_id = _openid_user(settings)
    before = _recommend(base, user_id)
    items = [i["item_id"] for i in _recommend(base, "someone-else-entirely")["items"]][-3:]
    batch = _events(openid, items, "fresh")
    count = _stored_count(settings)
    features_before = _online_features(settings, user_id)

    response = httpx.post(f"{base}/events", json={"events": batch}, timeout=30)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "stored": 5,
        "duplicates": [],
        "refused": [],
        "users": [user_id],
        "features_updated": 1,
        "notes": [],
        "linked_users": [],
    }
    assert _stored_count(settings) == count + 5  # on disk before the answer
    _assert_counted(features_before, _online_features(settings, user_id), views=3, carts=1, purchases=1)
    # Both worker processes answer: every answer from now on must reflect the events within a poll or two.
    deadline = time.monotonic() + 3
    answers = []
    while time.monotonic() < deadline:
        answers.append(_recommend(base, user_id))
    assert len(answers) > 10
    # Changed, not lost: a path that failed to build would also change the intent (to none).
    assert all(a["intent"] is not None and a["intent"] != before["intent"] for a in answers[-10:])
    assert answers[-1]["items"] != before["items"]

    again = httpx.post(f"{base}/events", json={"events": batch}, timeout=30).json()
    assert again["stored"] == 0 and again["duplicates"] == [e["event_id"] for e in batch]
    assert again["features_updated"] == 0
    assert _stored_count(settings) == count + 5
    _assert_counted(features_before, _online_features(settings, user_id), views=3, carts=1, purchases=1)


def test_events_are_pushed_to_a_redis_online_store_and_stored_while_it_is_down(trained_system, tmp_path) -> None:
    system, _ = trained_system
    with own_redis() as redis:
        settings = system.model_copy(update={"data_dir": tmp_path / "data", "online_store": redis.url})
        shutil.copytree(system.data_dir, settings.data_dir)
        repo.materialize(settings)
        openid, user_id = _openid_user(settings)
        features_before = _online_features(settings, user_id)
        with running_server(settings, tmp_path / "bentoml.log") as base:
            pushed = httpx.post(f"{base}/events", json={"events": _events(openid, ["i-a", "i-b"], "up")}, timeout=30)
            assert pushed.json()["features_updated"] == 1, pushed.text
            _assert_counted(features_before, _online_features(settings, user_id), views=2, carts=1, purchases=1)

            redis.kill()
            count = _stored_count(settings)
            down = httpx.post(f"{base}/events", json={"events": _events(openid, ["i-c"], "down")}, timeout=30)

            assert down.status_code == 200, down.text
            body = down.json()
            assert body["stored"] == 3 and body["features_updated"] == 0
            assert "online store unavailable" in body["notes"][0]
            assert _stored_count(settings) == count + 3  # nothing acknowledged is lost


def _online_features(settings: Settings, user_id: str) -> dict[str, float]:
    online = OnlineRows(repo.feature_store(settings), [repo.USER_VIEW])
    rows = held_rows(online, repo.USER_VIEW, USER_FEATURES, pd.DataFrame({"user_id": [user_id]}))
    assert len(rows) == 1, f"{user_id} has no online row"
    return rows.iloc[0][list(USER_FEATURES)].to_dict()


def _assert_counted(before: dict[str, float], after: dict[str, float], views: int, carts: int, purchases: int) -> None:
    """The online row counts the events: the 7-day counters moved by exactly the batch's views, carts, purchases."""
    assert after["views_7d"] == before["views_7d"] + views
    assert after["carts_7d"] == before["carts_7d"] + carts
    assert after["purchases_7d"] == before["purchases_7d"] + purchases
    assert after["monetary_7d"] == pytest.approx(before["monetary_7d"] + 19.9 * purchases, abs=1e-3)
    assert after["recency_days"] == 0.0


def test_a_link_makes_two_identifiers_one_user_in_every_worker(scratch_server) -> None:
    """A login binds the person's mini-program openid to another person's member id: both get one user's answers."""
    base, settings = scratch_server
    openid, user_id = _openid_user(settings)
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    others = identity[(identity["user_key_type"] == "member_id") & (identity["user_id"] != user_id)]
    member = str(others.iloc[0]["user_key"])
    by_member = {"user_key_type": "member_id", "user_key": member, "k": 10}
    by_openid = {"user_key_type": "openid", "user_key": openid, "k": 10}
    assert _post(base, by_member)["user_id"] != _post(base, by_openid)["user_id"]
    link = {"key_type_a": "openid", "key_a": openid, "key_type_b": "member_id", "key_b": member}

    response = httpx.post(
        f"{base}/events", json={"events": _events(openid, ["i-x"], "login")[:1], "links": [link]}, timeout=30
    )

    assert response.status_code == 200, response.text
    (linked,) = response.json()["linked_users"]
    time.sleep(1.0)  # the other worker reads the merged map within a poll
    answers = [_post(base, body) for _ in range(6) for body in (by_member, by_openid)]
    assert {a["user_id"] for a in answers} == {linked}
    assert len({tuple(i["item_id"] for i in a["items"]) for a in answers[-2:]}) == 1
    stored = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA).set_index(["user_key_type", "user_key"])
    assert stored.loc[("member_id", member), "user_id"] == stored.loc[("openid", openid), "user_id"] == linked


def test_a_link_joining_an_identifier_to_itself_is_a_400(scratch_server) -> None:
    base, _ = scratch_server
    link = {"key_type_a": "openid", "key_a": "o-1", "key_type_b": "openid", "key_b": "o-1"}
    response = httpx.post(
        f"{base}/events", json={"events": _events("o-1", ["i-x"], "self")[:1], "links": [link]}, timeout=30
    )
    assert response.status_code == 400
    assert "two different identifiers" in response.text


def _post(base: str, body: dict) -> dict:
    response = httpx.post(f"{base}/recommend", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_bad_events_are_refused_one_by_one_and_the_good_ones_stored(scratch_server) -> None:
    base, settings = scratch_server
    openid, _ = _openid_user(settings)
    good = _events(openid, ["i-x"], "mixed")[:1]
    future = _events(openid, ["i-x"], "future", event_time=(datetime.now(UTC) + timedelta(days=1)).isoformat())[:1]
    negative = _events(openid, ["i-x"], "negative", quantity=-3)[:1]
    unknown = _events(openid, ["i-x"], "unknown", event_type="teleport")[:1]
    count = _stored_count(settings)

    body = httpx.post(f"{base}/events", json={"events": good + future + negative + unknown}, timeout=30).json()

    assert body["stored"] == 1
    refused = {r["event_id"]: r for r in body["refused"]}
    assert set(refused) == {"future-0", "negative-0", "unknown-0"}
    assert "in the future" in refused["future-0"]["reasons"][0]
    assert "quantity" in refused["negative-0"]["reasons"][0]
    assert "teleport" in refused["unknown-0"]["reasons"][0]
    assert [refused[i]["index"] for i in ("future-0", "negative-0", "unknown-0")] == [1, 2, 3]
    assert _stored_count(settings) == count + 1


@pytest.mark.parametrize(
    ("events", "field"),
    [
        (lambda e: e * 1001, "events"),
        (lambda e: [e[0] | {"event_id": "x" * 129}], "event_id"),
        (lambda e: [e[0] | {"user_key": "k" * 129}], "user_key"),
        (lambda e: [], "events"),
    ],
)
def test_a_malformed_batch_is_a_400_naming_the_field_and_stores_nothing(scratch_server, events, field: str) -> None:
    base, settings = scratch_server
    batch = events(_events("o-any", ["i-x"], "bad")[:1])
    count = _stored_count(settings)

    response = httpx.post(f"{base}/events", json={"events": batch}, timeout=30)

    assert response.status_code == 400, response.text
    assert field in {loc for err in response.json()["detail"] for loc in err["loc"]}
    assert _stored_count(settings) == count
