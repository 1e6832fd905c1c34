"""A circuit breaker for the online store: after a failure, answer from fallbacks at once for a cool-down.

Without it every request during an outage paid the full failure (redis-py's default retries back
off for seconds), and the one worker queued everything behind it. With it, only one request per
cool-down period tries the store; the rest are told "open" immediately and degrade, and the first
success closes the breaker again, so recovery takes at most one cool-down after the store returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class BreakerOpen(RuntimeError):
    """The store failed recently: not tried again until the cool-down ends."""


class CircuitBreaker:
    """Closed (calls go through) until a call raises; then open for `cooldown_seconds`; then one trial call."""

    def __init__(self, cooldown_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._retry_at = 0.0  # while the clock is before this, the breaker is open
        self.last_error: str | None = None

    @property
    def is_open(self) -> bool:
        return self._clock() < self._retry_at

    def call(self, fn: Callable[[], T]) -> T:
        with self._lock:
            now = self._clock()
            if now < self._retry_at:
                raise BreakerOpen(f"online store failed recently ({self.last_error}); retrying after the cool-down")
            if self.last_error is not None:  # half-open: this call is the trial; others wait out a new cool-down
                self._retry_at = now + self.cooldown_seconds
        try:
            result = fn()
        except Exception as exc:
            with self._lock:
                self.last_error = type(exc).__name__
                self._retry_at = self._clock() + self.cooldown_seconds
            raise
        with self._lock:
            self.last_error, self._retry_at = None, 0.0
        return result
