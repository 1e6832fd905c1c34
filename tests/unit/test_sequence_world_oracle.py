"""On a generated world the oracle scores the same questions as the models, and is the ceiling it should be."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from siyu.settings import Settings, settings_under
from siyu.world.entities import WorldConfig
from siyu.world.generator import generate_world
from siyu.world.next_item import stage_blind
from training.sequence.baselines import Popularity, Transitions
from training.sequence.ceiling import RUNGS, observable_ceiling
from training.sequence.data import leave_last_out
from training.sequence.evaluation import OracleRecommender, benchmark
from training.sequence.sources import own_events, read_dataset
from training.sequence.world_truth import oracle_for


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = settings_under(tmp_path_factory.mktemp("oracle-world"))
    generate_world(WorldConfig(users=1500, items=150, days=25, seed=11), settings, progress=False)
    return settings


def test_oracle_rows_line_up_with_the_sequences_and_beat_the_baselines(world: Settings) -> None:
    data = own_events(world)  # resolves identities first, so one person is one sequence
    assert world.identity_map_path.exists()
    split = leave_last_out(data)
    oracle = benchmark(OracleRecommender(oracle_for(world, data)), split)
    # Nearly every test user's last step is the truth's evaluation step (same person, same item).
    assert oracle["unscored_users"] <= 0.05 * (oracle["users"] + oracle["unscored_users"])
    popularity = benchmark(Popularity(), split)
    transitions = benchmark(Transitions(), split)
    assert oracle["ndcg@10"] > 1.1 * max(popularity["ndcg@10"], transitions["ndcg@10"])


def test_the_oracle_told_less_ranks_worse_down_to_what_the_log_shows(world: Settings) -> None:
    split = leave_last_out(own_events(world))
    rungs = observable_ceiling(world, split)
    assert list(rungs) == list(RUNGS)
    full = benchmark(OracleRecommender(oracle_for(world, split.data)), split)["ndcg@10"]
    assert rungs["oracle"] == pytest.approx(full)
    # Reading the session from gaps loses the session's true category and start: a clear step down.
    assert rungs["session_from_gaps"] < 0.98 * rungs["stage_blind"] <= rungs["oracle"]
    assert rungs["session_from_gaps"] > benchmark(Popularity(), split)["ndcg@10"]


def test_a_stage_blind_oracle_gives_every_regular_session_the_same_rates(world: Settings) -> None:
    rows = pd.read_parquet(world.truth_dir / "next_item.parquet")
    blind = stage_blind(rows)
    assert list(blind.columns) == list(rows.columns) and len(blind) == len(rows)
    regular_online = ~blind["replenishment"] & (blind["channel"] != "pos")
    assert rows.loc[regular_online, "intent_stage"].nunique() == 3
    assert blind.loc[regular_online, "taste_rate"].nunique() == 1
    replenishing = blind["replenishment"].to_numpy()
    assert (blind.loc[replenishing, "taste_rate"] == rows.loc[replenishing, "taste_rate"]).all()


def test_a_world_without_truth_has_no_ceiling(tmp_path: Path) -> None:
    assert observable_ceiling(settings_under(tmp_path), None) == {}  # type: ignore[arg-type]


def test_a_dataset_without_world_truth_has_no_oracle(tmp_path: Path) -> None:
    settings = settings_under(tmp_path)
    assert oracle_for(settings, None) is None  # type: ignore[arg-type]


def test_dataset_format_is_told_from_the_first_line(tmp_path: Path) -> None:
    taobao = tmp_path / "log.csv"
    taobao.write_text("1,10,5,pv,1511544070\n1,11,5,buy,1511544170\n1,12,5,pv,1511544270\n")
    assert read_dataset(taobao).n_steps == 3
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1 10\n1 11\n1 12\n")
    assert not read_dataset(pairs).has_actions
    retail = tmp_path / "retail.csv.gz"
    with gzip.open(retail, "wt") as handle:
        handle.write("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n")
        handle.write("536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n")
        handle.write("536366,71053,LANTERN,6,2010-12-02 08:26:00,3.39,17850.0,United Kingdom\n")
    assert read_dataset(retail).n_users == 1
