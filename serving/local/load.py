"""Closed-loop HTTP load for tests and benchmarks: N clients, each sending its next request when the last returns.

Every answer is kept with when it was sent and how long it took, so a caller can cut the run into
phases (before, during and after an outage) and compute latency percentiles and throughput per phase.
Clients are the standard library's keep-alive `http.client` connections: the load runs on the same
cores as the server, and httpx spent ~0.45 ms of client CPU per request (measured against the same
server), which a latency figure meant for the service should not carry. The clock stops when the
body has been read; parsing it is the caller's business.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


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
        address = urlsplit(self.base)
        connection = KeptAlive(address.hostname or "127.0.0.1", address.port or 80, self.timeout)
        try:
            while not self._stop.is_set():
                body = json.dumps(self.body(next(self._counter))).encode()
                sent = time.monotonic()
                try:
                    status, payload = connection.post(self.path, body)
                except (OSError, http.client.HTTPException):
                    status, payload = 0, b""
                seconds = time.monotonic() - sent
                self.answers.append(Answer(sent, seconds, status, json.loads(payload) if status == 200 else None))
        finally:
            connection.close()

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


class KeptAlive:
    """One keep-alive HTTP connection, reopened when the server has closed it between two requests.

    A request that fails on a reused connection before any answer (the server dropped it while idle)
    is sent once more on a new one, as HTTP clients do; any other failure is the caller's.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._connection: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) of a JSON POST."""
        reused = self._connection is not None
        try:
            return self._post(path, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        try:
            return self._post(path, body)
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = self._connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
