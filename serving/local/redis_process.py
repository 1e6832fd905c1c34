"""A Redis server of our own on a free port, for tests and benchmarks that must kill the online store.

The machine's shared Redis is never touched: this one is started here, killed by its own PID, and
can be started again on the same port, as a store coming back after an outage would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from serving.local.launcher import free_port


class RedisProcess:
    """One `redis-server --save ''` (nothing on disk) on `port`; `kill` and `start` may alternate."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, ready_timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (Debian package redis-server)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"redis-server did not listen on port {self.port} within {ready_timeout}s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def own_redis() -> Iterator[RedisProcess]:
    """A started Redis of our own, always killed at the end."""
    redis = RedisProcess(free_port())
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()
