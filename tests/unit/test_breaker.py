"""The online store's circuit breaker: fail once, stay open for the cool-down, one trial, close on success."""

from __future__ import annotations

import pytest

from serving.recommend.breaker import BreakerOpen, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Store:
    """Counts calls; raises while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def read(self) -> str:
        self.calls += 1
        if self.down:
            raise ConnectionError("refused")
        return "row"


def _tripped() -> tuple[Clock, Store, CircuitBreaker]:
    """A breaker that has just seen the store fail once."""
    clock, store = Clock(), Store()
    breaker = CircuitBreaker(cooldown_seconds=2.0, clock=clock)
    store.down = True
    with pytest.raises(ConnectionError):
        breaker.call(store.read)
    return clock, store, breaker


def test_a_failure_opens_the_breaker_so_later_calls_do_not_touch_the_store() -> None:
    _, store, breaker = _tripped()
    for _ in range(5):
        with pytest.raises(BreakerOpen, match="ConnectionError"):
            breaker.call(store.read)

    assert store.calls == 1 and breaker.is_open


def test_after_the_cool_down_one_trial_call_goes_through_and_a_success_closes_it() -> None:
    clock, store, breaker = _tripped()
    clock.now += 2.5
    with pytest.raises(ConnectionError):  # the trial: the store is still down
        breaker.call(store.read)
    with pytest.raises(BreakerOpen):  # and the breaker opened again
        breaker.call(store.read)

    store.down = False
    clock.now += 2.5
    assert breaker.call(store.read) == "row"
    assert breaker.call(store.read) == "row" and not breaker.is_open and breaker.last_error is None
    assert store.calls == 4


def test_a_healthy_store_is_called_every_time() -> None:
    store = Store()
    breaker = CircuitBreaker(cooldown_seconds=2.0, clock=Clock())
    assert [breaker.call(store.read) for _ in range(3)] == ["row"] * 3
    assert store.calls == 3
