"""Events arriving in batches: refused one by one with reasons, stored before acknowledged, stored once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from siyu.data import schema
from siyu.data.ingest import ingest_events
from siyu.data.store import read_table
from siyu.settings import Settings

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _event(n: int, **changes: object) -> dict:
    event = {
        "event_time": (NOW - timedelta(minutes=n)).isoformat(),
        "user_key": "o-1",
        "user_key_type": "openid",
        "item_id": f"i{n}",
        "event_type": "view",
        "channel": "mini_program",
        "store_id": None,
        "quantity": 1,
        "unit_price": 9.9,
        "session_id": "s-1",
    }
    return event | changes


def _stored(settings: Settings):
    return read_table(settings.events_dir, schema.EVENT_SCHEMA)


def test_good_events_are_stored_and_a_retried_batch_counts_once(settings: Settings) -> None:
    batch = [_event(1), _event(2, event_type="purchase")]
    first = ingest_events(settings, batch, ["e1", "e2"], NOW)
    again = ingest_events(settings, batch, ["e1", "e2"], NOW)

    assert len(first.stored) == 2 and first.part and not first.duplicates and not first.refused
    assert again.stored.empty and again.duplicates == ["e1", "e2"] and again.part is None
    stored = _stored(settings)
    assert len(stored) == 2 and set(stored["event_type"]) == {"view", "purchase"}


def test_an_id_twice_in_one_batch_is_stored_once(settings: Settings) -> None:
    result = ingest_events(settings, [_event(1), _event(1)], ["same", "same"], NOW)
    assert len(result.stored) == 1 and result.duplicates == ["same"]


def test_bad_events_are_refused_with_reasons_and_the_good_ones_stored(settings: Settings) -> None:
    batch = [
        _event(1),
        _event(2, event_time=(NOW + timedelta(hours=2)).isoformat()),
        _event(3, quantity=-2),
        _event(4, event_type="teleport"),
        _event(5, user_key_type="passport", unit_price=-1),
    ]
    result = ingest_events(settings, batch, [f"e{i}" for i in range(5)], NOW)

    assert len(result.stored) == 1 and result.stored["item_id"].tolist() == ["i1"]
    why = {r.event_id: r.reasons for r in result.refused}
    assert set(why) == {"e1", "e2", "e3", "e4"} and [r.index for r in result.refused] == [1, 2, 3, 4]
    assert "is in the future" in why["e1"][0]
    assert any("quantity" in reason for reason in why["e2"])
    assert any("event_type 'teleport'" in reason for reason in why["e3"])
    assert len(why["e4"]) == 2  # every reason, not the first
    assert len(_stored(settings)) == 1


def test_a_batch_with_nothing_good_writes_nothing(settings: Settings) -> None:
    result = ingest_events(settings, [_event(1, channel="fax")], ["e1"], NOW)
    assert result.stored.empty and result.part is None and len(result.refused) == 1
    assert _stored(settings).empty
    # A refused id was never stored, so the corrected event is not a duplicate.
    assert len(ingest_events(settings, [_event(1)], ["e1"], NOW).stored) == 1
