"""Repurchase cycles from a hand-made log: which items are due, in which order, and which are not."""

from __future__ import annotations

import pandas as pd

from serving.recommend.repurchase import RepurchaseCycles
from training.impression_history import UserEvents

DAY = pd.Timedelta(days=1)
START = pd.Timestamp("2026-01-01", tz="UTC")


def _purchases(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(user, item, day) purchases."""
    return pd.DataFrame(
        {
            "user_id": [u for u, _, _ in rows],
            "item_id": [i for _, i, _ in rows],
            "event_time": [START + d * DAY for _, _, d in rows],
            "event_type": "purchase",
            "session_id": [f"s{n}" for n in range(len(rows))],
        }
    )


def test_items_are_due_between_their_cycle_and_three_cycles_most_overdue_first() -> None:
    # milk: bought every 10 days by several people; soap every 30; a kettle once per person (no cycle)
    history = [(f"u{n}", "milk", d) for n in range(3) for d in (0, 10, 20)]
    history += [(f"u{n}", "soap", d) for n in range(3) for d in (0, 30)] + [("u3", "soap", 40), ("u3", "soap", 70)]
    history += [(f"u{n}", "kettle", 5) for n in range(4)]
    cycles = RepurchaseCycles.of(_purchases(history))
    assert cycles.days == {"milk": 10.0, "soap": 30.0}

    mine = UserEvents.of(_purchases([("me", "milk", 0), ("me", "milk", 3), ("me", "soap", 0), ("me", "kettle", 1)]))
    day = lambda d: (START + d * DAY).value  # noqa: E731
    assert cycles.due(mine, day(5)) == []  # milk 0.2 cycles after the newest purchase, soap 0.17
    assert cycles.due(mine, day(12)) == ["milk"]  # milk 0.9 cycles; soap 0.4
    assert cycles.due(mine, day(27)) == ["milk", "soap"]  # milk 2.4 cycles, soap 0.9: the most overdue first
    assert cycles.due(mine, day(40)) == ["soap"]  # milk 3.7 cycles: moved on
    assert cycles.bought_within(mine, day(5), days=3) == {"milk"}  # the kettle was 4 days ago
    assert cycles.bought_within(mine, day(5), days=4) == {"milk", "kettle"}
