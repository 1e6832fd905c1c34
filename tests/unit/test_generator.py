"""The synthetic world: deterministic, on contract, physically consistent, with truth that matches events."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from siyu.data import schema
from siyu.data.identity import build_identity_map, pairwise_precision_recall
from siyu.data.store import read_table
from siyu.settings import Settings
from siyu.world.entities import WorldConfig
from siyu.world.generator import WorldExistsError, generate_world
from tests.conftest import SMALL_WORLD, make_settings


def _events(settings: Settings) -> pd.DataFrame:
    return read_table(settings.events_dir, schema.EVENT_SCHEMA)


def _truth(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(settings.truth_impressions_path)


def test_same_seed_same_world_other_seed_other_world(small_world: Settings, tmp_path) -> None:
    again = make_settings(tmp_path / "again")
    generate_world(SMALL_WORLD, again, progress=False)
    pd.testing.assert_frame_equal(_events(small_world), _events(again))
    pd.testing.assert_frame_equal(_truth(small_world), _truth(again))

    other = make_settings(tmp_path / "other")
    generate_world(WorldConfig(**{**SMALL_WORLD.__dict__, "seed": SMALL_WORLD.seed + 1}), other, progress=False)
    assert not _events(small_world).equals(_events(other))


def test_tables_follow_the_contract(small_world: Settings) -> None:
    contract = {
        small_world.events_dir / "generated.parquet": schema.EVENT_SCHEMA,
        small_world.items_path: schema.ITEM_SCHEMA,
        small_world.prices_path: schema.PRICE_SCHEMA,
        small_world.inventory_path: schema.INVENTORY_SCHEMA,
        small_world.identity_links_path: schema.IDENTITY_LINK_SCHEMA,
    }
    for path, expected in contract.items():
        assert pq.read_schema(path).remove_metadata().equals(expected), path
    events = _events(small_world)
    assert set(events["event_type"]) <= set(schema.EVENT_TYPES)
    assert set(events["channel"]) <= set(schema.CHANNELS)
    assert {"view", "add_to_cart", "purchase", "store_visit", "favourite", "coupon_claim"} <= set(events["event_type"])
    item_events = events[~events["event_type"].isin(["search", "store_visit"])]
    assert item_events["item_id"].notna().all()
    assert (item_events["unit_price"] > 0).all()


def test_stock_never_negative_and_sales_never_exceed_stock(small_world: Settings) -> None:
    inventory = pd.read_parquet(small_world.inventory_path)
    assert (inventory["stock"] >= 0).all()
    assert (inventory["stock"] == 0).any(), "the world should contain stock-outs"
    truth = _truth(small_world)
    # Stock is allocated per simulated day; a session's day is in its id (sessions may cross midnight).
    day = truth["session_id"].str.slice(1, 5).astype(int)
    truth["date"] = (pd.Timestamp(SMALL_WORLD.start) + pd.to_timedelta(day, unit="D")).dt.date
    sold = truth.groupby(["item_id", "date"], as_index=False)["quantity"].sum()
    merged = sold.merge(inventory, on=["item_id", "date"], how="left")
    assert (merged["quantity"] <= merged["stock"]).all()
    assert not truth.loc[~truth["in_stock"], "purchased"].any()


def test_pos_and_online_events_use_their_own_identifiers(small_world: Settings) -> None:
    events = _events(small_world)
    pos = events[events["channel"] == "pos"]
    assert set(pos["user_key_type"]) == {"member_id", "phone_hash"}
    assert pos["store_id"].notna().all()
    assert set(events.loc[events["channel"] == "mini_program", "user_key_type"]) == {"openid"}
    assert set(events.loc[events["channel"] == "app", "user_key_type"]) == {"device_id"}
    assert "user_id" not in events.columns  # the person behind the keys is only in the truth


def test_identity_links_resolve_to_exactly_the_true_people(small_world: Settings, tmp_path) -> None:
    copy = make_settings(tmp_path)
    copy.data_dir.mkdir(parents=True)
    for path in (small_world.identity_links_path,):
        (copy.data_dir / path.name).write_bytes(path.read_bytes())
    copy.events_dir.mkdir()
    (copy.events_dir / "generated.parquet").write_bytes((small_world.events_dir / "generated.parquet").read_bytes())
    build_identity_map(copy)
    identity = pd.read_parquet(copy.identity_map_path)
    truth = pd.read_parquet(small_world.truth_identity_path)
    assert pairwise_precision_recall(identity, truth) == (1.0, 1.0)
    pos_members = identity.merge(truth, on=["user_key_type", "user_key"])
    assert (pos_members.groupby("user_id")["true_user_id"].nunique() == 1).all()
    assert (identity.groupby("user_id").size() > 1).any(), "some people must have several identifiers"


def test_truth_lines_up_with_events(small_world: Settings) -> None:
    events, truth = _events(small_world), _truth(small_world)
    views = events[events["event_type"] == "view"]
    online = truth[truth["channel"] != "pos"]
    assert len(views) == len(online)
    keyed = views.merge(online, on=["session_id", "item_id"], how="left", suffixes=("", "_truth"))
    assert keyed["true_purchase_prob"].notna().all()
    assert (keyed["event_time"] == keyed["event_time_truth"]).all()
    assert (keyed["unit_price"] == keyed["price"]).all()
    purchases = events[events["event_type"] == "purchase"]
    assert len(purchases) == int(truth["purchased"].sum())
    assert purchases["quantity"].sum() == truth["quantity"].sum()
    # Higher true probability really means more purchases (the truth drives the events).
    top = truth["true_purchase_prob"] > truth["true_purchase_prob"].median()
    assert truth.loc[top & truth["in_stock"], "purchased"].mean() > 2 * truth.loc[~top, "purchased"].mean()


def test_refuses_to_overwrite_existing_events_unless_asked(small_world: Settings, tmp_path) -> None:
    settings = make_settings(tmp_path)
    tiny = WorldConfig(users=50, items=20, days=3, seed=1)
    generate_world(tiny, settings, progress=False)
    before = (settings.events_dir / "generated.parquet").read_bytes()
    with pytest.raises(WorldExistsError, match="--overwrite"):
        generate_world(WorldConfig(users=60, items=20, days=3, seed=2), settings, progress=False)
    assert (settings.events_dir / "generated.parquet").read_bytes() == before
    report = generate_world(WorldConfig(users=60, items=20, days=3, seed=2), settings, overwrite=True, progress=False)
    assert report.events == len(_events(settings))
    assert not list(settings.data_dir.glob(".staging-*"))
