"""/recommend latency over HTTP next to the in-process floor (raw online read + model forward), same run."""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pandas as pd

from features import repo
from serving.launcher import running_server
from serving.ranker import MAX_CANDIDATES, PATH_CANDIDATES, Ranker
from siyu.metrics import percentile_ms
from siyu.settings import Settings


def _users(settings: Settings, n: int) -> list[str]:
    snapshots = pd.read_parquet(repo.source_paths(settings)[repo.USER_VIEW], columns=["user_id"])
    users = snapshots["user_id"].unique().tolist()
    rng = random.Random(0)
    return [rng.choice(users) for _ in range(n)]


def _timed(call, *args) -> float:
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def run(settings: Settings, quick: bool, log_dir: Path) -> tuple[dict, list[str]]:
    requests = 300 if quick else 1000
    users = _users(settings, requests)
    reads, floor, paths, latencies, errors = [], [], [], [], 0
    ranker = Ranker(settings)  # the in-process floor: one Feast online read, then the same ranking
    try:
        with (
            running_server(settings, log_dir / "bench-server.log") as base,
            httpx.Client(base_url=base, timeout=30) as client,
        ):
            for user in users[:20]:  # warm-up: first calls pay lazy imports and connection setup
                client.post("/recommend", json={"user_id": user, "k": 10})
                ranker.recommend(user, 10)
            # Interleaved, so background load on the machine hits both sides alike.
            for user in users:
                started = time.perf_counter()
                response = client.post("/recommend", json={"user_id": user, "k": 10})
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200
                reads.append(_timed(ranker.user_row, user))
                floor.append(_timed(ranker.recommend, user, 10))
                paths.append(_timed(ranker.suggest, user))
    finally:
        ranker.close()
    figures = {
        "recommend_p50_ms": percentile_ms(latencies, 50),
        "recommend_p99_ms": percentile_ms(latencies, 99),
        "floor_p50_ms": percentile_ms(floor, 50),
        "floor_p99_ms": percentile_ms(floor, 99),
        "feast_online_read_p50_ms": percentile_ms(reads, 50),
        "feast_online_read_p99_ms": percentile_ms(reads, 99),
        "path_retrieval_p50_ms": percentile_ms(paths, 50),
        "path_retrieval_p99_ms": percentile_ms(paths, 99),
        "recommend_p50_vs_floor": percentile_ms(latencies, 50) / percentile_ms(floor, 50),
        "requests": requests,
        "errors": errors,
    }
    notes = [
        f"{requests:,} sequential POST /recommend (k=10) over HTTP to one BentoML process, random known users",
        "floor = the same ranking in-process (Feast online reads of the user row and the user x candidate-category"
        " rows, then LightGBM over the candidates), same users, interleaved with the HTTP calls",
        "feast_online_read = the user-row read alone",
        f"online store: {settings.online_store}; candidates per request: the decision-path model's top"
        f" {PATH_CANDIDATES} and co-occurrence's top {PATH_CANDIDATES} for the user's recent steps, then the"
        f" {MAX_CANDIDATES} most popular in-stock items (LightGBM scores the union)",
        "path_retrieval = the model and co-occurrence reads of the user's path alone (part of the floor)",
    ]
    return figures, notes
