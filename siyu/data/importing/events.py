"""Import format `events`: our own event schema as CSV or Parquet, checked against its vocabularies."""

from __future__ import annotations

import pandas as pd

from siyu.data.importing.converted import Converted, event_frame
from siyu.data.importing.validation import INT32_MAX, Rows, choice, integer, number, text, timestamp
from siyu.data.schema import CHANNELS, EVENT_SCHEMA, EVENT_TYPES, USER_KEY_TYPES

EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)
_ITEMLESS_EVENTS = ("search", "store_visit")


def convert_events(frame: pd.DataFrame, rows: Rows) -> Converted:
    """Our schema as text: every column required, values checked against the allowed vocabularies."""
    when = timestamp(rows, frame["event_time"], "event_time", ("ISO8601",))
    event_type = choice(rows, frame["event_type"], "event_type", EVENT_TYPES)
    channel = choice(rows, frame["channel"], "channel", CHANNELS)
    key_type = choice(rows, frame["user_key_type"], "user_key_type", USER_KEY_TYPES)
    user_key = text(rows, frame["user_key"], "user_key")
    session = text(rows, frame["session_id"], "session_id")
    item = text(rows, frame["item_id"], "item_id", required=False)
    store = text(rows, frame["store_id"], "store_id", required=False)
    quantity = integer(rows, frame["quantity"], "quantity", 0, INT32_MAX)
    price = number(rows, frame["unit_price"], "unit_price", required=False)
    rows.reject(price < 0, "unit_price {value} is negative", frame["unit_price"])
    needs_item = ~event_type.isin(_ITEMLESS_EVENTS)
    rows.reject(needs_item & item.eq(""), "item_id is empty (required unless event_type is search/store_visit)")
    ok = rows.good
    events = event_frame(
        event_time=when[ok],
        user_key=user_key[ok],
        user_key_type=key_type[ok],
        item_id=item[ok].replace("", None),
        event_type=event_type[ok],
        channel=channel[ok],
        store_id=store[ok].replace("", None),
        quantity=quantity[ok],
        unit_price=price[ok],
        session_id=session[ok],
    )
    return Converted(events)
