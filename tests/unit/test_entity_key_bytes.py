"""Serving's entity-key bytes must be Feast's, or every online read would find nothing."""

from __future__ import annotations

from feast.infra.key_encoding_utils import serialize_entity_key
from hypothesis import given
from hypothesis import strategies as st

from features.online_rows import entity_keys
from features.sqlite_rows import entity_key_bytes

NAMES = st.sampled_from(["user_id", "category_id", "item_id", "z", "ünïcode"])


@given(st.dictionaries(NAMES, st.text(max_size=40), min_size=1, max_size=3))
def test_string_keys_serialise_as_feast_does(key: dict[str, str]) -> None:
    (proto,) = entity_keys([key])
    assert entity_key_bytes([key]) == [serialize_entity_key(proto, entity_key_serialization_version=3)]
