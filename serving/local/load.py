"""Closed-loop HTTP load for tests and benchmarks: N clients, each sending its next request when the last returns.

Every answer is kept with when it was sent and how long it took, so a caller can cut the run into
phases (before, during and after an outage) and compute latency percentiles and throughput per phase.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() when the request left
    seconds: float
    status: int  # 0: no HTTP answer at all (connection refused, timeout)
    body: dict | None


class ClosedLoop:
    """`clients` threads posting `body(i)` to `path` back to back, from `with` entry until exit."""

    def __init__(self, base: str, path: str, body: Callable[[int], dict], clients: int, timeout: float = 30.0) -> None:
        self.base, self.path, self.body, self.timeout = base, path, body, timeout
        self.answers: list[Answer] = []
        self.started = self.stopped = 0.0
        self._counter = itertools.count()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        with httpx.Client(base_url=self.base, timeout=self.timeout) as client:
            while not self._stop.is_set():
                body = self.body(next(self._counter))
                sent = time.monotonic()
                try:
                    response = client.post(self.path, json=body)
                    status = response.status_code
                    parsed = response.json() if status == 200 else None
                except httpx.HTTPError:
                    status, parsed = 0, None
                self.answers.append(Answer(sent, time.monotonic() - sent, status, parsed))

    def __enter__(self) -> ClosedLoop:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        self.stopped = time.monotonic()

    def between(self, start: float, end: float) -> list[Answer]:
        """Answers to the requests sent in [start, end) (monotonic clock)."""
        return [a for a in self.answers if start <= a.sent < end]

    def throughput(self) -> float:
        """Answers per second over the whole run."""
        return len(self.answers) / max(self.stopped - self.started, 1e-9)
