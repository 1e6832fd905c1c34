"""Links learned at request time merge persons in the stored identity map, and concurrent merges lose nothing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from siyu.data import schema
from siyu.data.identity import merge_links, resolve
from siyu.data.store import read_table, to_table, write_table_atomic
from siyu.settings import Settings


def _link(type_a: str, key_a: str, type_b: str, key_b: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"key_type_a": type_a, "key_a": key_a, "key_type_b": type_b, "key_b": key_b, "link_time": datetime.now(UTC)}]
    )


def _settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data")
    keys = pd.DataFrame({"user_key_type": ["openid", "member_id", "device_id"], "user_key": ["o1", "m1", "d1"]})
    stored = resolve(_link("device_id", "d1", "openid", "o1"), keys)  # o1 and d1 are one person; m1 another
    write_table_atomic(to_table(stored, schema.IDENTITY_MAP_SCHEMA), settings.identity_map_path)
    return settings


def _user(identity: pd.DataFrame, key_type: str, key: str) -> str:
    return identity.set_index(["user_key_type", "user_key"]).loc[(key_type, key), "user_id"]


def test_a_link_merges_two_persons_and_is_stored(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    before = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    assert _user(before, "openid", "o1") != _user(before, "member_id", "m1")

    after = merge_links(settings, _link("openid", "o1", "member_id", "m1"))

    merged = {_user(after, t, k) for t, k in [("openid", "o1"), ("member_id", "m1"), ("device_id", "d1")]}
    assert len(merged) == 1
    assert after.equals(read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA))
    assert len(read_table(settings.identity_links_path, schema.IDENTITY_LINK_SCHEMA)) == 1


def test_a_link_to_a_new_identifier_adds_it_to_its_person(tmp_path: Path) -> None:
    settings = _settings(tmp_path)

    after = merge_links(settings, _link("member_id", "m1", "phone_hash", "p-new"))

    assert _user(after, "phone_hash", "p-new") == _user(after, "member_id", "m1")
    assert len(after) == 4


def test_concurrent_merges_keep_every_link(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    links = [_link("member_id", "m1", "phone_hash", f"p{i}") for i in range(12)]
    threads = [threading.Thread(target=merge_links, args=(settings, link)) for link in links]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = read_table(settings.identity_links_path, schema.IDENTITY_LINK_SCHEMA)
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    assert len(stored) == 12
    member = _user(identity, "member_id", "m1")
    assert all(_user(identity, "phone_hash", f"p{i}") == member for i in range(12))
