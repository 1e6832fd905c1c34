""" "Buy it again": each consumable's repurchase cycle from the log, and which of a user's items are due.

An item's cycle is the median gap between one person's consecutive purchases of it, over every person
who bought it more than once (items with fewer than MIN_GAPS such gaps have no cycle: they are not
consumables, or the log is too short to tell). An item is due for a user once DUE_AT of its cycle has
passed since their last purchase of it, and until OVERDUE cycles have (by then they have moved on).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from training.impression_history import UserEvents

MIN_GAPS = 3
DUE_AT = 0.8
OVERDUE = 3.0
DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class RepurchaseCycles:
    days: dict[str, float]  # item id -> median days between one person's purchases of it

    @classmethod
    def of(cls, purchases: pd.DataFrame) -> RepurchaseCycles:
        """From purchase events with `user_id`, `item_id` and `event_time`."""
        ordered = purchases.sort_values(["user_id", "item_id", "event_time"], kind="stable")
        same = (ordered["user_id"] == ordered["user_id"].shift()) & (ordered["item_id"] == ordered["item_id"].shift())
        gaps = (ordered["event_time"] - ordered["event_time"].shift()).dt.total_seconds() / 86_400
        gaps = gaps[same & (gaps > 0.5)]  # same-day repeats are one shopping trip, not a cycle
        by_item = gaps.groupby(ordered.loc[gaps.index, "item_id"])
        counts, medians = by_item.size(), by_item.median()
        return cls({str(item): float(days) for item, days in medians[counts >= MIN_GAPS].items()})

    def due(self, past: UserEvents, now_ns: int) -> list[str]:
        """The user's items whose cycle says it is time to buy again, most overdue first."""
        bought = past.kind == "purchase"
        if not bought.any() or not self.days:
            return []
        last: dict[str, int] = {}  # a user's purchases are few: a loop beats a groupby on every request
        for item, when in zip(past.item[bought].astype(str), past.time_ns[bought].tolist(), strict=True):
            if item in self.days:
                last[item] = max(last.get(item, when), when)
        cycles = {item: (now_ns - when) / DAY_NS / self.days[item] for item, when in last.items()}
        due = [item for item, elapsed in cycles.items() if DUE_AT <= elapsed <= OVERDUE]
        return sorted(due, key=lambda item: -cycles[item])

    def bought_within(self, past: UserEvents, now_ns: int, days: float) -> set[str]:
        """Items the user bought in the last `days` days."""
        recent = (past.kind == "purchase") & (past.time_ns >= now_ns - days * DAY_NS)
        return {str(item) for item in past.item[recent]}
