"""/recommend's retrieval from users' decision paths on the real trained system: the registered decision-path
model, co-occurrence over the stored event log, the Feast store and the item table, with no stand-ins.

The event-writing tests add a part file to the shared system's log and always remove it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.repo import item_meta_path
from serving.recommend.histories import BEHAVIOUR_FEATURES
from serving.recommend.ranker import PATH_CANDIDATES, Ranker
from siyu.data import schema
from siyu.data.identity import attach_user_ids
from siyu.data.store import new_part_path, read_table, to_table, write_table_atomic
from siyu.settings import Settings
from siyu.tracking import CHAMPION, alias_version
from training.codes import codes_of
from training.dataset import labelled_impressions
from training.impression_history import UNKNOWN_CATEGORY, history_features
from training.taste_traces import category_codes, taste_traces

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ranker(trained_system) -> Iterator[Ranker]:
    ranker = Ranker(trained_system[0])
    yield ranker
    ranker.close()


def _busiest_user(ranker: Ranker) -> str:
    paths = ranker.paths
    assert paths is not None, ranker.paths_note
    return str(paths.data.user_ids[paths.data.lengths.argmax()])


def _new_events(settings: Settings, user_key_type: str, user_key: str, items: list[str]) -> pd.DataFrame:
    """One session after the end of the log: a view of each item, then a cart add and purchase of the last."""
    events = read_table(settings.events_dir, schema.EVENT_SCHEMA)
    start = events["event_time"].max() + timedelta(hours=1)
    steps = [(item, "view") for item in items] + [(items[-1], "add_to_cart"), (items[-1], "purchase")]
    return pd.DataFrame(
        {
            "event_time": [start + timedelta(minutes=i) for i in range(len(steps))],
            "user_key": user_key,
            "user_key_type": user_key_type,
            "item_id": [item for item, _ in steps],
            "event_type": [kind for _, kind in steps],
            "channel": "mini_program",
            "store_id": None,
            "quantity": 1,
            "unit_price": 10.0,
            "session_id": f"{user_key}-later",
        }
    )


def _write_events(settings: Settings, frame: pd.DataFrame) -> Path:
    path = new_part_path(settings.events_dir, "events")
    write_table_atomic(to_table(frame, schema.EVENT_SCHEMA), path)
    return path


@contextmanager
def _stored(settings: Settings, ranker: Ranker, frame: pd.DataFrame) -> Iterator[Path]:
    """`frame` as one new part of the shared log for the block; removed after it, the views rebuilt without it."""
    path = _write_events(settings, frame)
    try:
        yield path
    finally:
        path.unlink()
        ranker.refresh()


def _coded(item_ids: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    """Items as serving passes its candidates to the history features: codes, and the coding (id -> code)."""
    coding = {item: code for code, item in enumerate(dict.fromkeys(item_ids))}
    return codes_of(item_ids, coding), coding


def _untouched_items(ranker: Ranker, user_id: str, n: int) -> list[str]:
    paths = ranker.paths
    row = paths.users.get_loc(user_id)
    touched = {str(paths.item_ids[t - 1]) for t in paths.data.item[paths.data.steps_of(row)]}
    return [str(i) for i in ranker.catalog.in_stock["item_id"] if str(i) not in touched][-n:]


def test_a_user_with_events_gets_candidates_from_their_path_and_an_intent(ranker, trained_system) -> None:
    settings, _ = trained_system
    user = _busiest_user(ranker)
    suggestions = ranker.suggest(user)
    assert len(suggestions.next_items) == PATH_CANDIDATES and suggestions.co_occurring
    assert 0 < suggestions.intent < 1 and suggestions.steps > 5
    result = ranker.recommend(user, k=10)
    assert result.fallback is None and len(result.items) == 10
    assert result.sequence_model_version == alias_version(settings, settings.sequence_model_name, CHAMPION)
    assert result.intent == suggestions.intent


def test_a_new_stored_event_changes_the_users_path_and_intent(ranker, trained_system) -> None:
    settings, _ = trained_system
    user = _busiest_user(ranker)
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    key = identity[identity["user_id"] == user].iloc[0]
    before = ranker.suggest(user)
    items = _untouched_items(ranker, user, 3)
    new = _new_events(settings, key["user_key_type"], key["user_key"], items)
    with _stored(settings, ranker, new):
        ranker.refresh()
        after = ranker.suggest(user)
        assert after.steps == before.steps + 5  # three touches, then the last item's cart add and purchase
        assert after.next_items != before.next_items
        assert after.co_occurring != before.co_occurring
        assert after.intent != before.intent
        # The conversion model's history features see the new session too, while it is live.
        now = new["event_time"].max() + timedelta(minutes=5)
        categories = ranker.catalog.items.set_index("item_id")["category_id"].reindex([items[-1], items[0]])
        served = ranker.histories.features(user, _coded([items[-1], items[0]]), category_codes(categories), now)
        history = pd.DataFrame(served, columns=BEHAVIOUR_FEATURES)
        assert history["item_purchases_before"].tolist() == [1, 0]
        assert history["item_views_before"].tolist() == [1, 1]
        assert history["session_views_so_far"].tolist() == [3, 3] and history["session_carts_so_far"].iat[0] == 1
    restored = ranker.suggest(user)
    assert (restored.next_items, restored.co_occurring, restored.steps) == (
        before.next_items,
        before.co_occurring,
        before.steps,
    )
    # the user's path was re-encoded alone this time, in a batch of everyone before: float rounding only
    assert restored.intent == pytest.approx(before.intent, abs=1e-6)


def test_new_parts_are_served_as_fresh_events_until_the_views_are_due_a_rebuild(ranker, trained_system) -> None:
    """The refresh tick does not rebuild every view for parts that only add events: they are read as fresh."""
    settings, _ = trained_system
    user = _busiest_user(ranker)
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    key = identity[identity["user_id"] == user].iloc[0]
    views, before = ranker.log, ranker.suggest(user)
    new = _new_events(settings, key["user_key_type"], key["user_key"], _untouched_items(ranker, user, 3))
    with _stored(settings, ranker, new) as path:
        ranker.refresh(rebuild_after=3600)
        assert ranker.log is views  # not rebuilt: the last build is younger than an hour
        ranker.watch_log()
        fresh = ranker.suggest(user, ranker.fresh.by_user[user])  # the path through the user's newest steps
        assert (fresh.intent, fresh.next_items) != (before.intent, before.next_items)
        ranker.refresh()  # an explicit refresh rebuilds at once, the part folded into the views
        assert ranker.log is not views and path.name not in ranker.fresh.parts
        assert ranker.suggest(user).steps == before.steps + 5
    assert ranker.suggest(user).steps == before.steps


def test_a_person_with_events_but_no_features_yet_is_ranked_from_their_path(ranker, trained_system) -> None:
    settings, _ = trained_system
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    key_type = identity["user_key_type"].iloc[0]
    newcomer = pd.DataFrame({"user_key_type": [key_type], "user_key": ["someone-new-since-materialisation"]})
    user = str(attach_user_ids(newcomer, identity)["user_id"].iat[0])
    items = [str(i) for i in ranker.catalog.in_stock["item_id"][:2]]
    with _stored(settings, ranker, _new_events(settings, key_type, newcomer["user_key"].iat[0], items)):
        ranker.refresh()
        result = ranker.recommend(user, k=5)
    assert result.fallback is None and len(result.items) == 5
    assert any("no stored features" in note for note in result.notes)
    assert result.intent is not None
    assert ranker.recommend(user, k=5).fallback == "popular"  # once the events are gone, a stranger again


def test_the_catalogue_is_read_again_only_when_its_files_change(ranker, trained_system) -> None:
    """A refresh tick keeps the catalogue (and every memo kept per catalogue) while the item files stand still."""
    settings, _ = trained_system
    before = ranker.catalog
    ranker.refresh()
    assert ranker.catalog is before
    meta = item_meta_path(settings)
    stat = meta.stat()
    os.utime(meta, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # as a rewrite of the attributes would
    ranker.refresh()
    assert ranker.catalog is not before
    assert ranker.catalog.items.equals(before.items)


def test_serving_history_features_match_training_on_logged_impressions(ranker, trained_system) -> None:
    """No training/serving skew: the served user's slice at a logged view's instant gives the training row."""
    settings, _ = trained_system
    events = attach_user_ids(
        read_table(settings.events_dir, schema.EVENT_SCHEMA),
        read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA),
    )
    meta = pd.read_parquet(item_meta_path(settings))
    impressions = labelled_impressions(events).merge(meta, on="item_id", how="left")
    impressions = impressions.sample(40, random_state=1).reset_index(drop=True)
    events = events.merge(meta, on="item_id", how="left").fillna({"category_id": UNKNOWN_CATEGORY})
    trained = history_features(events, impressions).join(taste_traces(events, impressions))
    assert (trained["user_views_before"] > 0).any()  # the traces have something to agree on
    for row, seen in impressions.iterrows():
        served = ranker.histories.features(
            seen["user_id"], _coded([seen["item_id"]]), category_codes([seen["category_id"]]), seen["event_timestamp"]
        )
        np.testing.assert_allclose(served[0], trained.iloc[row].to_numpy(), rtol=1e-6, err_msg=str(seen.to_dict()))


def test_a_stored_purchase_lowers_the_items_live_stock_at_once(ranker, trained_system) -> None:
    """The conversion model's stock_left: the snapshot's count less every unit logged since it, fresh ones included."""
    settings, _ = trained_system
    stock = ranker.catalog.in_stock
    row = int(np.argmax(stock["units_7d"].astype(float)))
    item = str(stock["item_id"][row])
    counted_at = pd.Timestamp(ranker.catalog.items.set_index("item_id").at[item, "event_timestamp"])

    def units() -> float:
        return ranker.sales.units(ranker.catalog, ranker.log.sales, ranker.fresh)[row]

    before = units()
    assert before == 0  # the newest snapshot counts the stock after the log's last sale
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA).iloc[0]
    purchase = _new_events(settings, identity["user_key_type"], identity["user_key"], [item])
    purchase = purchase.assign(quantity=3, event_time=counted_at + timedelta(hours=1))
    with _stored(settings, ranker, purchase):
        ranker.watch_log()
        fresh = units()  # read as a fresh part
        ranker.refresh()
        folded = units()  # the same purchase, now in the rebuilt views
    assert fresh == folded == 3  # _new_events' session buys its last item once, here 3 units
    assert units() == 0


def test_an_item_sold_out_since_its_count_is_no_longer_recommended(ranker, trained_system) -> None:
    settings, _ = trained_system
    user = _busiest_user(ranker)
    before = ranker.recommend(user, k=5)
    top = before.items[0].item_id
    row = ranker.catalog.rows.get_loc(top)
    stock = int(ranker.catalog.in_stock["stock"][row])
    counted_at = pd.Timestamp(ranker.catalog.items.set_index("item_id").at[top, "event_timestamp"])
    identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA).iloc[0]
    buyout = _new_events(settings, identity["user_key_type"], identity["user_key"], [top])
    buyout = buyout.assign(quantity=stock, event_time=counted_at + timedelta(hours=1))
    with _stored(settings, ranker, buyout):
        ranker.watch_log()
        result = ranker.recommend(user, k=5)
    after = [item.item_id for item in result.items]
    assert stock > 0 and top not in after and len(after) == 5
    assert before.candidates == len(ranker.catalog.rows)  # the small world's whole in-stock catalogue...
    assert result.candidates == before.candidates - 1  # ...less the item sold out, not ranked at all
