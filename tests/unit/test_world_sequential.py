"""The world has sequential structure a recommender can learn, recorded in its truth: complements, repurchase
cycles, drifting interest, intent stages, and the true next-item distribution at each user's last step."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from siyu.settings import Settings
from siyu.world.entities import WorldConfig
from siyu.world.generator import build_simulator, generate_world
from siyu.world.next_item import oracle_next_item_scores
from siyu.world.sequential import INTEREST_DRIFT_SHARE, INTEREST_RHO, drift_interest, initial_interest
from tests.conftest import make_settings

WORLD = WorldConfig(users=2000, items=300, days=30, seed=3)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("sequential-world"))
    generate_world(WORLD, settings, progress=False)
    return settings


@pytest.fixture(scope="module")
def impressions(world: Settings) -> pd.DataFrame:
    frame = pd.read_parquet(world.truth_impressions_path)
    frame["day"] = frame["session_id"].str.slice(1, 5).astype(int)
    return frame


@pytest.fixture(scope="module")
def items(world: Settings) -> pd.DataFrame:
    return pd.read_parquet(world.truth_items_path).set_index("item_id")


def _purchases(impressions: pd.DataFrame) -> pd.DataFrame:
    return impressions.loc[impressions["purchased"], ["user_id", "item_id", "day"]].drop_duplicates()


def _seen_within(pairs: pd.DataFrame, impressions: pd.DataFrame, days: int) -> pd.DataFrame:
    """Per (user, item, day, complement_id) pair: was the complement shown / bought to the user in the next `days`?"""
    seen = impressions[["user_id", "item_id", "day", "purchased"]].rename(
        columns={"item_id": "complement_id", "day": "seen_day"}
    )
    hits = pairs.merge(seen, on=["user_id", "complement_id"])
    hits = hits[(hits["seen_day"] > hits["day"]) & (hits["seen_day"] <= hits["day"] + days)]
    keys = ["user_id", "item_id", "day", "complement_id"]
    flags = hits.groupby(keys)["purchased"].max().rename("bought").reset_index().assign(shown=True)
    out = pairs.merge(flags, on=keys, how="left")
    return out.fillna({"shown": False, "bought": False})


def test_complements_are_shown_and_bought_in_the_two_weeks_after_a_purchase(
    world: Settings, impressions: pd.DataFrame
) -> None:
    complements = pd.read_parquet(world.truth_complements_path)
    bought = _purchases(impressions)
    first = bought.groupby(["user_id", "item_id"], as_index=False)["day"].min()
    first = first[first["day"] <= WORLD.days - 14]
    after_purchase = _seen_within(first.merge(complements, on="item_id"), impressions, days=14)
    # Baseline: the same complements over the same two weeks, for active users who did not buy the item.
    rng = np.random.default_rng(0)
    active = impressions["user_id"].unique()
    baseline = first.assign(user_id=rng.choice(active, len(first))).merge(complements, on="item_id")
    owners = set(zip(bought["user_id"], bought["item_id"], strict=True))
    baseline = baseline[[(u, i) not in owners for u, i in zip(baseline["user_id"], baseline["item_id"], strict=True)]]
    baseline = _seen_within(baseline, impressions, days=14)
    assert len(after_purchase) > 500 and len(baseline) > 500
    shown, shown_base = after_purchase["shown"].mean(), baseline["shown"].mean()
    sold, sold_base = after_purchase["bought"].mean(), baseline["bought"].mean()
    assert shown > 3 * shown_base, (shown, shown_base)
    assert sold > 3 * max(sold_base, 1e-3), (sold, sold_base)


def test_complements_come_from_the_complementary_category(items: pd.DataFrame, world: Settings) -> None:
    complements = pd.read_parquet(world.truth_complements_path)
    category = items["category"]
    pairs = pd.DataFrame(
        {"from": category.loc[complements["item_id"]].to_numpy(), "to": category.loc[complements["complement_id"]]}
    )
    assert (pairs["from"] != pairs["to"]).all()
    assert (pairs.groupby("from")["to"].nunique() == 1).all(), "one complementary category per category"
    assert (complements.groupby("item_id").size() == 3).all()


def test_consumables_come_due_around_their_repurchase_interval(items: pd.DataFrame, impressions: pd.DataFrame) -> None:
    bought = _purchases(impressions).sort_values("day")
    bought["consumable"] = items.loc[bought["item_id"], "consumable"].to_numpy()
    bought["interval"] = items.loc[bought["item_id"], "repurchase_interval_days"].to_numpy()
    bought["next"] = bought.groupby(["user_id", "item_id"])["day"].shift(-1)
    consumables = bought[bought["consumable"] & (bought["day"] + 2 * bought["interval"] <= WORLD.days)]
    others = bought[~bought["consumable"] & (bought["day"] + 20 <= WORLD.days)]
    repeat, repeat_other = consumables["next"].notna().mean(), others["next"].notna().mean()
    assert len(consumables) > 80 and repeat > 0.25 and repeat > 3 * repeat_other, (repeat, repeat_other)
    again = bought[bought["consumable"] & bought["next"].notna()]
    gap = (again["next"] - again["day"]) / again["interval"]
    assert 0.7 < gap.median() < 1.2, gap.describe()
    assert gap.between(0.5, 1.5).mean() > 0.75, gap.describe()
    assert (items["repurchase_interval_days"].gt(0) == items["consumable"]).all()
    assert 0.15 < items["consumable"].mean() < 0.45


def test_interest_drifts_with_the_stated_autocorrelation_and_keeps_its_spread() -> None:
    cfg = WorldConfig(users=4000, seed=9)
    taste = np.random.default_rng(1).normal(0, 1, (cfg.users, cfg.taste_dim)) / np.sqrt(cfg.taste_dim)
    path = [initial_interest(cfg, taste)]
    for day in range(1, 41):
        path.append(drift_interest(cfg, taste, path[-1], day))
    for lag in (1, 10, 40):
        corr = np.corrcoef(path[0].ravel(), path[lag].ravel())[0, 1]
        expected = (1 - INTEREST_DRIFT_SHARE) + INTEREST_DRIFT_SHARE * INTEREST_RHO**lag
        assert abs(corr - expected) < 0.02, (lag, corr, expected)
    for day in (0, 40):
        assert abs(path[day].std() / taste.std() - 1) < 0.03, "the interest's marginal spread stays the taste's"
    # Re-drifting a day gives the same interest (its noise is a stream of its own).
    np.testing.assert_array_equal(drift_interest(cfg, taste, path[9], 10), path[10])


def test_sessions_follow_the_drifted_interest_of_their_day() -> None:
    """Late sessions' categories are likelier under their own day's interest than under the first day's."""
    sim = build_simulator(WORLD)
    first = sim.choice_state(0)
    gain, sessions = 0.0, 0
    for day in range(WORLD.days):
        out = sim.run_day(day)
        if day < 20:
            continue
        regular = out.impressions[~out.impressions["replenishment"]]
        opening = regular.sort_values("event_time").drop_duplicates("session_id")  # an item of the session's category
        user = pd.Index(sim.users.ids).get_indexer(opening["user_id"])
        category = sim.items.category[pd.Index(sim.items.ids).get_indexer(opening["item_id"])]
        rows = np.arange(user.size)
        today, then = out.state.category_probs(user)[rows, category], first.category_probs(user)[rows, category]
        gain += np.log(today / then).sum()
        sessions += user.size
    assert sessions > 2000
    assert gain / sessions > 0.03, gain / sessions


def test_users_interest_stays_anchored_to_their_taste(world: Settings) -> None:
    users = pd.read_parquet(world.truth_dir / "users.parquet")
    taste = users.filter(like="taste_").to_numpy()
    interest = users.filter(like="interest_").to_numpy()
    corr = np.corrcoef(taste.ravel(), interest.ravel())[0, 1]
    assert abs(corr - np.sqrt(1 - INTEREST_DRIFT_SHARE)) < 0.05, corr


def test_purchase_stage_sessions_convert_more(impressions: pd.DataFrame) -> None:
    rate = impressions.groupby("intent_stage")["purchased"].mean()
    assert rate["browse"] < rate["need"] < rate["purchase"], rate
    assert rate["purchase"] > 2 * rate["browse"]
    sessions = impressions.drop_duplicates("session_id")
    assert set(sessions.loc[sessions["replenishment"], "intent_stage"]) == {"purchase"}
    assert 0.45 < (sessions["intent_stage"] == "browse").mean() < 0.55


def test_the_oracle_knows_each_users_next_item(world: Settings, items: pd.DataFrame) -> None:
    rows = pd.read_parquet(world.truth_next_item_path)
    catalogue = items.index.to_numpy()
    assert len(rows) > 800 and rows["user_id"].is_unique
    probs = oracle_next_item_scores(world, [*rows["user_id"], "someone-else"], catalogue)
    assert probs.dtype == np.float32 and probs.shape == (len(rows) + 1, catalogue.size)
    assert np.isnan(probs[-1]).all(), "a user without an observable step has no oracle row"
    probs = probs[:-1]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    column = pd.Index(catalogue)
    for r, shown in enumerate(rows["shown_item_ids"]):
        if len(shown):
            assert (probs[r, column.get_indexer(shown)] == 0).all()
    actual = probs[np.arange(len(rows)), column.get_indexer(rows["item_id"])]
    assert actual.mean() > 10 / catalogue.size, actual.mean() * catalogue.size
    # Calibrated: the mean probability of what happened is the mean of sum p^2 (online steps, where the
    # oracle is exact up to the small bias of conditioning on a user's *last* step).
    online = (rows["channel"] != "pos").to_numpy()
    expected = (probs[online] ** 2).sum(axis=1).mean()
    assert abs(actual[online].mean() / expected - 1) < 0.2, (actual[online].mean(), expected)
    # A subset of items and the truth directory give the same numbers.
    subset = catalogue[::7]
    again = oracle_next_item_scores(Path(world.truth_dir), rows["user_id"].tolist()[:50], subset)
    np.testing.assert_allclose(again, probs[:50, ::7], rtol=1e-5)


def test_truth_records_the_items_sequential_traits(items: pd.DataFrame) -> None:
    share = items.groupby("category")["within_category_share"].sum()
    np.testing.assert_allclose(share.to_numpy(), 1.0)
    assert set(items["category"]) == set(range(WORLD.categories))


def test_a_day_is_simulated_from_the_state_the_days_before_left() -> None:
    sim = build_simulator(WorldConfig(users=300, items=40, days=5, seed=2))
    with pytest.raises(ValueError, match="simulate the days before"):
        sim.run_day(1)
    sim.run_day(0)
    snapshot = copy.deepcopy(sim)
    first = sim.run_day(1).impressions
    again = snapshot.run_day(1).impressions
    pd.testing.assert_frame_equal(first, again)
