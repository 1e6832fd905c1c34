"""/recommend over HTTP at 1, 10 and 50 concurrent clients, next to the in-process floor measured in the same
run, and with the online store killed mid-run (the service's own Redis, started and killed here).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from features import repo
from serving.local.launcher import running_server
from serving.local.load import Answer, ClosedLoop
from serving.local.redis_process import own_redis
from serving.recommend.catalog import MAX_CANDIDATES, latest_item_table
from serving.recommend.ranker import PATH_CANDIDATES, Ranker
from siyu.data import schema
from siyu.data.store import read_table
from siyu.metrics import percentile_ms
from siyu.settings import Settings

CONCURRENCY = (1, 10, 50)
SECONDS_PER_LEVEL = {True: 5.0, False: 20.0}
DEGRADED_CLIENTS = 10
OUTAGE_SECONDS = {True: 4.0, False: 10.0}
EVENTS_PER_BATCH = 100


def _users(settings: Settings, n: int) -> list[str]:
    snapshots = pd.read_parquet(repo.source_paths(settings)[repo.USER_VIEW], columns=["user_id"])
    users = snapshots["user_id"].unique().tolist()
    rng = random.Random(0)
    return [rng.choice(users) for _ in range(n)]


def _timed(call, *args) -> float:
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def _floor(settings: Settings, users: list[str]) -> dict[str, float]:
    """The same ranking in-process, one request at a time: what HTTP and the framework add to is this."""
    reads, floor, paths, candidates = [], [], [], []
    ranker = Ranker(settings)
    compiled = ranker.champion.compiled_note is None
    try:
        for user in users[:20]:  # warm-up: first calls pay lazy imports and connection setup
            ranker.recommend(user, 10)
        for user in users:
            reads.append(_timed(ranker.user_row, user))
            started = time.perf_counter()
            candidates.append(ranker.recommend(user, 10).candidates)
            floor.append(time.perf_counter() - started)
            paths.append(_timed(ranker.suggest, user))
    finally:
        ranker.close()
    return {
        "floor_p50_ms": percentile_ms(floor, 50),
        "floor_p99_ms": percentile_ms(floor, 99),
        "feast_online_read_p50_ms": percentile_ms(reads, 50),
        "feast_online_read_p99_ms": percentile_ms(reads, 99),
        "path_retrieval_p50_ms": percentile_ms(paths, 50),
        "path_retrieval_p99_ms": percentile_ms(paths, 99),
        "candidates_p50": float(np.median(candidates)),
        "candidates_min": min(candidates),
        "compiled_trees": int(compiled),
    }


def _round_robin(users: list[str]) -> Callable[[int], dict]:
    """The i-th request's body: the benchmark's users in turn."""
    return lambda i: {"user_id": users[i % len(users)], "k": 10}


def _phase(answers: list[Answer]) -> tuple[float, float, int]:
    seconds = [a.seconds for a in answers]
    return percentile_ms(seconds, 50), percentile_ms(seconds, 99), sum(a.status != 200 for a in answers)


def _concurrency(settings: Settings, users: list[str], quick: bool, log_dir: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    body = _round_robin(users)
    with running_server(settings, log_dir / "bench-server.log") as base:
        with httpx.Client(base_url=base, timeout=30) as client:
            for i in range(40):  # warm-up: every worker pays its lazy imports and connections
                client.post("/recommend", json=body(i))
        for clients in CONCURRENCY:
            with ClosedLoop(base, "/recommend", body, clients) as load:
                time.sleep(SECONDS_PER_LEVEL[quick])
            p50, p99, errors = _phase(load.answers)
            figures |= {
                f"recommend_p50_ms_c{clients}": p50,
                f"recommend_p99_ms_c{clients}": p99,
                f"throughput_rps_c{clients}": load.throughput(),
                f"requests_c{clients}": len(load.answers),
                f"errors_c{clients}": errors,
            }
    return figures


def _degraded(settings: Settings, users: list[str], quick: bool, log_dir: Path) -> dict[str, float]:
    """10 clients; the online store (our own Redis) killed a few seconds in: how fast are the fallbacks?"""
    body = _round_robin(users)
    with own_redis() as redis:
        on_redis = settings.model_copy(update={"online_store": redis.url})
        repo.materialize(on_redis)
        with (
            running_server(on_redis, log_dir / "bench-degraded-server.log") as base,
            ClosedLoop(base, "/recommend", body, DEGRADED_CLIENTS) as load,
        ):
            time.sleep(3.0)
            killed = time.monotonic()
            redis.kill()
            time.sleep(OUTAGE_SECONDS[quick])
    healthy = load.between(0, killed)
    outage = load.between(killed, float("inf"))
    p50, p99, errors = _phase(outage)
    return {
        "healthy_p99_ms_redis_c10": _phase(healthy)[1],
        "degraded_p50_ms": p50,
        "degraded_p99_ms": p99,
        "degraded_throughput_rps": len(outage) / OUTAGE_SECONDS[quick],
        "degraded_share": sum(bool(a.body and a.body["degraded"]) for a in outage) / max(len(outage), 1),
        "errors_degraded": errors,
    }


def _event(user_key: tuple[str, str], item: str, kind: str, event_id: str, when: datetime) -> dict:
    return {
        "event_id": event_id,
        "event_time": when.isoformat(),
        "user_key_type": user_key[0],
        "user_key": user_key[1],
        "item_id": item,
        "event_type": kind,
        "channel": "app",
        "quantity": 1,
        "unit_price": 9.9,
        "session_id": f"bench-{event_id}",
    }


def _keys(settings: Settings, users: list[str]) -> list[tuple[str, str]]:
    """One identifier (type, key) per benchmark user, as an app would send it."""
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA).drop_duplicates("user_id")
    by_user = identity.set_index("user_id")
    return [(by_user.at[u, "user_key_type"], by_user.at[u, "user_key"]) for u in users if u in by_user.index]


def _freshness(settings: Settings, users: list[str], quick: bool, log_dir: Path) -> dict[str, float]:
    """Event -> changed recommendation: POST a purchase for a user, then /recommend until the answer changes;
    and /events throughput: batches of 100 events from 10 clients."""
    keys = _keys(settings, users)[: 30 if quick else 100]
    items = latest_item_table(settings)["item_id"].astype(str).tolist()
    seconds, unchanged = [], 0
    with (
        running_server(settings, log_dir / "bench-events-server.log") as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        for n, key in enumerate(keys):
            first = client.post("/recommend", json={"user_key_type": key[0], "user_key": key[1], "k": 10}).json()
            before = first["intent"], [i["item_id"] for i in first["items"]]
            event = _event(key, items[-1 - n], "purchase", f"fresh-{n}", datetime.now(UTC))
            started = time.perf_counter()
            client.post("/events", json={"events": [event]})
            while time.perf_counter() - started < 5:
                body = client.post("/recommend", json={"user_id": first["user_id"], "k": 10}).json()
                if (body["intent"], [i["item_id"] for i in body["items"]]) != before:
                    seconds.append(time.perf_counter() - started)
                    break
            else:
                unchanged += 1
        batch = lambda i: {  # noqa: E731
            "events": [
                _event(keys[(i + j) % len(keys)], items[j % len(items)], "view", f"load-{i}-{j}", datetime.now(UTC))
                for j in range(EVENTS_PER_BATCH)
            ]
        }
        with ClosedLoop(base, "/events", batch, DEGRADED_CLIENTS) as load:
            time.sleep(SECONDS_PER_LEVEL[quick])
    return {
        "freshness_p50_ms": percentile_ms(seconds, 50),
        "freshness_p99_ms": percentile_ms(seconds, 99),
        "freshness_unchanged": unchanged,
        "events_per_second": load.throughput() * EVENTS_PER_BATCH,
        "events_batch_p99_ms": _phase(load.answers)[1],
        "errors_events": _phase(load.answers)[2],
    }


def run(settings: Settings, quick: bool, log_dir: Path) -> tuple[dict, list[str]]:
    users = _users(settings, 300 if quick else 1000)
    figures = _floor(settings, users)
    figures |= _concurrency(settings, users, quick, log_dir)
    figures |= _degraded(settings, users, quick, log_dir)
    figures |= _freshness(settings, users, quick, log_dir)  # last: it adds events to the log
    one_core_rps = 1000 / figures["floor_p50_ms"]
    figures |= {
        "floor_one_core_rps": one_core_rps,
        "recommend_p50_c1_vs_floor": figures["recommend_p50_ms_c1"] / figures["floor_p50_ms"],
        "throughput_c10_vs_one_core": figures["throughput_rps_c10"] / one_core_rps,
        "requests": sum(figures[f"requests_c{c}"] for c in CONCURRENCY),
        "errors": sum(figures[f"errors_c{c}"] for c in CONCURRENCY)
        + figures["errors_degraded"]
        + figures["errors_events"],
    }
    notes = [
        f"floor = the ranking in-process, {len(users):,} sequential requests for random known users (Feast online"
        " reads of the user row and the user x candidate-category rows, then LightGBM over the candidates);"
        " floor_one_core_rps = 1000 / floor_p50_ms",
        f"HTTP: closed-loop clients (1, 10, 50) posting /recommend (k=10) for {SECONDS_PER_LEVEL[quick]:.0f} s each"
        f" to a BentoML server with {settings.workers} worker processes on a 2-core machine (keep-alive http.client"
        " connections, timed until the body is read; request tracing off, SIYU_TRACE_REQUESTS)",
        f"online store: {settings.online_store}; candidates per request: the decision-path model's top"
        f" {PATH_CANDIDATES} and co-occurrence's top {PATH_CANDIDATES} for the user's recent steps, then the"
        f" {MAX_CANDIDATES} most popular in-stock items (LightGBM scores the union)",
        f"degraded: the same server on a Redis of its own, {DEGRADED_CLIENTS} clients, Redis killed 3 s in;"
        f" degraded_* over the {OUTAGE_SECONDS[quick]:.0f} s after the kill (fail-fast Redis client, circuit breaker)",
        "path_retrieval = the model and co-occurrence reads of the user's path alone (part of the floor): the"
        " path's encoding and co-occurring items are computed for every user when the log views are rebuilt,"
        " a request adds its time (gap token) and the item scores; users with events since then are read live",
        "candidates = items LightGBM ranked per request before the rules (the union of every source);"
        " compiled_trees = 1 when the conversion model's trees ran compiled (TL2cgen), 0 on LightGBM's predictor",
        "feast_online_read = Feast's get_online_features for the user's row alone (the raw feature-store read);"
        " requests read their rows with the online store's online_read (features/online_rows.py)",
        "freshness = POST /events (one purchase by the user's openid or other key) until /recommend for the user"
        " answers differently (intent or items), over both workers; events_per_second = 10 clients posting"
        f" batches of {EVENTS_PER_BATCH} views",
    ]
    return figures, notes
