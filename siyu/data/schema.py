"""The data contract every producer (generator, importers) writes and every consumer reads.

One table of events plus item, price, inventory and identity-link tables. Keeping the Arrow
schemas here means a file that does not match is caught at write time, not in a model.
"""

from __future__ import annotations

import pyarrow as pa

EVENT_TYPES: tuple[str, ...] = (
    "view",
    "search",
    "favourite",
    "add_to_cart",
    "coupon_claim",
    "purchase",
    "refund",
    "store_visit",
)
CHANNELS: tuple[str, ...] = ("mini_program", "app", "pos", "wecom", "web")
# Identifiers a brand sees for one person; identity resolution merges them into one user_id.
USER_KEY_TYPES: tuple[str, ...] = ("member_id", "phone_hash", "openid", "device_id", "account_id", "guest")

TIMESTAMP = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_time", TIMESTAMP, nullable=False),
        pa.field("user_key", pa.string(), nullable=False),
        pa.field("user_key_type", pa.string(), nullable=False),
        pa.field("item_id", pa.string()),  # null for search / store_visit
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("store_id", pa.string()),  # null online
        pa.field("quantity", pa.int32(), nullable=False),
        pa.field("unit_price", pa.float64()),  # price shown or paid; null when unknown
        pa.field("session_id", pa.string(), nullable=False),
    ]
)

ITEM_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("category_id", pa.string(), nullable=False),
        pa.field("brand_id", pa.string()),
        pa.field("title", pa.string()),
        pa.field("list_price", pa.float64()),
        pa.field("cost", pa.float64()),
        # Stock kinds pricing must know: fresh food comes in batches that expire; seasonal goods have a sell-by.
        pa.field("shelf_life_days", pa.int32()),  # null: not perishable
        pa.field("sell_by", pa.date32()),  # null: no season end
        pa.field("salvage_value", pa.float64()),  # per unit left at batch/season end; null: carried over
    ]
)

# One row per item and day the price was in force (the brand's price book).
PRICE_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("on_promotion", pa.bool_(), nullable=False),
    ]
)

# Stock on hand at the start of each day, after that morning's deliveries (`received`), and the
# units written off at close (expired fresh food, seasonal leftovers sent to the outlet): waste.
INVENTORY_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("stock", pa.int64(), nullable=False),
        pa.field("received", pa.int64()),
        pa.field("written_off", pa.int64()),
    ]
)

# Evidence that two identifiers belong to one person (binding a phone at the till, logging in).
IDENTITY_LINK_SCHEMA = pa.schema(
    [
        pa.field("key_type_a", pa.string(), nullable=False),
        pa.field("key_a", pa.string(), nullable=False),
        pa.field("key_type_b", pa.string(), nullable=False),
        pa.field("key_b", pa.string(), nullable=False),
        pa.field("link_time", TIMESTAMP, nullable=False),
    ]
)

IDENTITY_MAP_SCHEMA = pa.schema(
    [
        pa.field("user_key_type", pa.string(), nullable=False),
        pa.field("user_key", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
    ]
)


def node_id(key_type: str, key: str) -> str:
    """Identifiers are only unique within their type: `openid:abc` and `member_id:abc` differ."""
    return f"{key_type}:{key}"
