"""/recommend with its online store killed under concurrent load: degraded answers at once, recovery after.

The server runs on a copy of the trained system whose online store is a Redis of the test's own, started
on a free port and killed by its PID mid-run (the machine's shared Redis is never touched). Before the
fail-fast store and the circuit breaker, each request during an outage waited 4-11 s for redis-py's
retries, and clients queued behind it got 504s.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from features import repo
from serving.local.launcher import running_server
from serving.local.load import ClosedLoop
from serving.local.redis_process import own_redis
from tests.conftest import known_user

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 8


def _wait_until_fresh(base: str, user_id: str, timeout: float) -> float:
    """Seconds until /recommend answers undegraded again."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        body = httpx.post(f"{base}/recommend", json={"user_id": user_id, "k": 5}, timeout=30).json()
        if not body["degraded"]:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"/recommend still degraded {timeout}s after the online store came back")


def test_killing_the_online_store_degrades_every_answer_fast_and_it_recovers(trained_system, tmp_path: Path) -> None:
    system, _ = trained_system
    with own_redis() as redis:
        settings = system.model_copy(update={"data_dir": tmp_path / "data", "online_store": redis.url})
        shutil.copytree(system.data_dir, settings.data_dir)
        repo.materialize(settings)
        user_id = known_user(settings)
        with running_server(settings, tmp_path / "bentoml.log") as base:
            first = httpx.post(f"{base}/recommend", json={"user_id": user_id, "k": 5}, timeout=30).json()
            assert first["degraded"] is False and first["fallback"] is None

            with ClosedLoop(base, "/recommend", lambda _: {"user_id": user_id, "k": 5}, CLIENTS) as load:
                time.sleep(1.5)
                killed = time.monotonic()
                redis.kill()
                time.sleep(3.0)
                restarted = time.monotonic()
                redis.start()
                repo.materialize(settings)  # the store came back empty (--save ''): reload it, as an operator would
                recovery = _wait_until_fresh(base, user_id, timeout=15)

            assert load.answers and all(a.status == 200 for a in load.answers), {a.status for a in load.answers}
            before = load.between(0, killed - 0.5)  # a request in flight at the kill may meet the dead store
            outage = load.between(killed + 0.2, restarted)  # requests already in flight at the kill may finish
            assert before and not any(a.body["degraded"] for a in before)
            assert len(outage) > CLIENTS and all(a.body["degraded"] for a in outage)
            # Failing fast, not waiting out retries: the slowest outage answer is far below redis-py's back-off.
            assert max(a.seconds for a in outage) < 1.0
            assert recovery < 10


def test_a_store_down_from_the_start_still_serves(trained_system, tmp_path: Path) -> None:
    system, _ = trained_system
    with own_redis() as redis:
        settings = system.model_copy(update={"data_dir": tmp_path / "data", "online_store": redis.url})
        shutil.copytree(system.data_dir, settings.data_dir)
        redis.kill()
        with running_server(settings, tmp_path / "bentoml.log") as base:
            response = httpx.post(f"{base}/recommend", json={"user_id": "anyone", "k": 4}, timeout=30)
            asked = [*(item["item_id"] for item in reversed(response.json()["items"])), "no-such-item"]
            reranked = httpx.post(f"{base}/rerank", json={"user_id": "anyone", "item_ids": asked}, timeout=30)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["degraded"] is True and body["fallback"] == "popular" and len(body["items"]) == 4
    assert any("online store unavailable" in note for note in body["notes"])
    # /rerank without the store: the caller's order, every id back, flagged
    assert reranked.status_code == 200, reranked.text
    body = reranked.json()
    assert [item["item_id"] for item in body["items"]] == asked
    assert body["degraded"] is True and body["fallback"] == "caller_order"
    assert body["items"][-1]["reason"] == "not ranked: unknown to the item table"
