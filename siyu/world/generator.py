"""`siyu data generate`: write a synthetic private-domain world and its ground truth.

What the brand's systems would see goes to the data directory (events, items, prices,
inventory, identity links); what only evaluation may read goes to `truth/` (true purchase
probability and intent stage of every impression, user and item parameters, complements, the true
demand curves, the true next-item distribution at each user's last step, which identifiers are one person).
Events are written one day at a time; what is kept across days is each day's start state (every
user's interest vector and the sparse due and complement rows, about 100 bytes per user and day), from
which the demand and next-item truths are computed at the end.
"""

from __future__ import annotations

import json
import resource
import shutil
import time
import uuid
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import Progress
from threadpoolctl import threadpool_limits

from siyu.data import schema
from siyu.data.store import to_table
from siyu.settings import Settings
from siyu.world.demand_truth import TRUTH_PRICE_MULTIPLIERS, true_demand
from siyu.world.entities import (
    Items,
    WorldConfig,
    identity_links,
    identity_truth,
    make_items,
    make_price_book,
    make_users,
    within_category_share,
)
from siyu.world.next_item import IMPRESSION_COLUMNS, next_item_truth
from siyu.world.sequential import ChoiceState
from siyu.world.simulate import Simulator

GENERATED_EVENTS_FILE = "generated.parquet"
IMPRESSION_TRUTH_SCHEMA = pa.schema(
    [
        ("session_id", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("event_time", schema.TIMESTAMP),
        ("channel", pa.string()),
        ("price", pa.float64()),
        ("on_promotion", pa.bool_()),
        ("true_purchase_prob", pa.float64()),
        ("in_stock", pa.bool_()),
        ("purchased", pa.bool_()),
        ("quantity", pa.int32()),
        ("intent_stage", pa.string()),
        ("replenishment", pa.bool_()),
    ]
)


class WorldExistsError(RuntimeError):
    """Raised instead of silently replacing events that are already in the data directory."""


@dataclass
class GenerateReport:
    users: int
    items: int
    days: int
    seed: int
    events: int
    impressions: int
    purchases: int
    seconds: float
    events_per_second: float
    peak_rss_mb: float
    demand_truth_seconds: float  # part of `seconds`: the true demand curves pricing evaluation reads

    def summary(self) -> str:
        return (
            f"{self.events:,} events ({self.purchases:,} purchases) from {self.users:,} users x {self.items:,} items"
            f" x {self.days} days in {self.seconds:.1f}s ({self.demand_truth_seconds:.1f}s of it the true demand"
            f" curves; {self.events_per_second:,.0f} events/s, peak RSS {self.peak_rss_mb:,.0f} MB)"
        )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate_world(
    cfg: WorldConfig, settings: Settings, overwrite: bool = False, progress: bool = True
) -> GenerateReport:
    """Simulate `cfg` into `settings.data_dir`; refuses to replace existing events unless `overwrite`."""
    data_dir = settings.data_dir
    existing = list(settings.events_dir.glob("*.parquet")) if settings.events_dir.exists() else []
    if existing and not overwrite:
        raise WorldExistsError(
            f"{settings.events_dir} already holds {len(existing)} event file(s); pass --overwrite to replace them"
        )
    started = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    staged = settings.model_copy(update={"data_dir": data_dir / f".staging-{uuid.uuid4().hex[:8]}"})
    try:
        # The world's matrix products are small (users x taste dimensions): a second BLAS thread only
        # spins beside the numba kernels' threads, which is slower on a small machine.
        with threadpool_limits(limits=1, user_api="blas"):
            counts = _simulate_into(cfg, staged, progress)
        _swap_in(staged, settings)
    finally:
        shutil.rmtree(staged.data_dir, ignore_errors=True)
    seconds = time.perf_counter() - started
    return GenerateReport(
        users=cfg.users,
        items=cfg.items,
        days=cfg.days,
        seed=cfg.seed,
        events=int(counts["events"]),
        impressions=int(counts["impressions"]),
        purchases=int(counts["purchases"]),
        seconds=seconds,
        events_per_second=counts["events"] / max(seconds, 1e-9),
        peak_rss_mb=_peak_rss_mb(),
        demand_truth_seconds=counts["demand_truth_seconds"],
    )


def build_simulator(cfg: WorldConfig) -> Simulator:
    """The world's fixed parts and a simulator at day 0: a pure function of `cfg` (tests re-simulate days with it)."""
    rng = np.random.default_rng(cfg.seed)
    centroids = rng.normal(0, 1, (cfg.categories, cfg.taste_dim)) / np.sqrt(cfg.taste_dim)
    users = make_users(cfg, rng, centroids)
    items = make_items(cfg, rng, centroids)
    price, promo = make_price_book(cfg, rng, items)
    return Simulator(cfg, rng, users, items, price, promo, centroids)


def _simulate_into(cfg: WorldConfig, out: Settings, progress: bool) -> dict[str, float]:
    """Write the whole world into `out`'s paths (a staging copy of the real settings)."""
    sim = build_simulator(cfg)
    users, items, price, promo = sim.users, sim.items, sim.price, sim.promo

    out.events_dir.mkdir(parents=True)
    out.truth_dir.mkdir()
    counts: dict[str, float] = {"events": 0, "impressions": 0, "purchases": 0}
    states: list[ChoiceState] = []  # each day's start state: the demand and next-item truths are computed from them
    stock_by_day = np.zeros((cfg.items, cfg.days), dtype=np.int64)
    received_by_day = np.zeros_like(stock_by_day)
    written_off_by_day = np.zeros_like(stock_by_day)
    with (
        pq.ParquetWriter(out.events_dir / GENERATED_EVENTS_FILE, schema.EVENT_SCHEMA, compression="zstd") as events_w,
        pq.ParquetWriter(out.truth_impressions_path, IMPRESSION_TRUTH_SCHEMA, compression="zstd") as truth_w,
        Progress(disable=not progress, transient=True) as bar,
    ):
        task = bar.add_task(f"simulating {cfg.days} days", total=cfg.days)
        for day in range(cfg.days):
            out_day = sim.run_day(day)
            events_w.write_table(to_table(out_day.events, schema.EVENT_SCHEMA))
            truth_w.write_table(to_table(out_day.impressions, IMPRESSION_TRUTH_SCHEMA))
            stock_by_day[:, day] = out_day.stock_at_open
            received_by_day[:, day] = out_day.received
            written_off_by_day[:, day] = out_day.written_off
            states.append(out_day.state)
            counts["events"] += len(out_day.events)
            counts["impressions"] += len(out_day.impressions)
            counts["purchases"] += int(out_day.impressions["purchased"].sum())
            bar.advance(task)

    dates = pd.date_range(cfg.start, periods=cfg.days, freq="D").date
    item_ids = np.repeat(items.ids, cfg.days)
    day_dates = np.tile(dates, cfg.items)
    tables = {
        out.items_path: to_table(
            pd.DataFrame(
                {
                    "item_id": items.ids,
                    "category_id": [f"c{k:02d}" for k in items.category],
                    "brand_id": [f"b{k:03d}" for k in items.brand],
                    "title": [f"item {i} of category {k}" for i, k in zip(items.ids, items.category, strict=True)],
                    "list_price": items.list_price,
                    "cost": items.cost,
                    "shelf_life_days": pd.array(np.where(items.shelf_life > 0, items.shelf_life, None), "Int32"),
                    "sell_by": [dates[d] if d >= 0 else None for d in np.minimum(items.sell_by_day, cfg.days - 1)],
                    "salvage_value": np.where(items.kind == "regular", np.nan, items.salvage_value),
                }
            ),
            schema.ITEM_SCHEMA,
        ),
        out.prices_path: to_table(
            pd.DataFrame(
                {"item_id": item_ids, "date": day_dates, "price": price.ravel(), "on_promotion": promo.ravel()}
            ),
            schema.PRICE_SCHEMA,
        ),
        out.inventory_path: to_table(
            pd.DataFrame(
                {
                    "item_id": item_ids,
                    "date": day_dates,
                    "stock": stock_by_day.ravel(),
                    "received": received_by_day.ravel(),
                    "written_off": written_off_by_day.ravel(),
                }
            ),
            schema.INVENTORY_SCHEMA,
        ),
        out.identity_links_path: to_table(identity_links(users, cfg.start), schema.IDENTITY_LINK_SCHEMA),
    }
    for path, table in tables.items():
        pq.write_table(table, path)
    _write_truth(cfg, out, sim)
    started = time.perf_counter()
    _write_demand_truth(out, sim, states)
    counts["demand_truth_seconds"] = time.perf_counter() - started
    impressions = pq.read_table(out.truth_impressions_path, columns=list(IMPRESSION_COLUMNS))
    pq.write_table(next_item_truth(sim, states, impressions.to_pandas()), out.truth_next_item_path)
    return counts


def _write_demand_truth(out: Settings, sim: Simulator, states: list[ChoiceState]) -> None:
    """True expected units per item, day and ladder price (long format: one row per item, day and price)."""
    cfg, items = sim.cfg, sim.items
    demand = true_demand(sim, states)  # (days, items, prices)
    n_prices = TRUTH_PRICE_MULTIPLIERS.size
    dates = pd.date_range(cfg.start, periods=cfg.days, freq="D").date
    pd.DataFrame(
        {
            "item_id": np.tile(np.repeat(items.ids, n_prices), cfg.days),
            "date": np.repeat(dates, cfg.items * n_prices),
            "price_multiplier": np.tile(TRUTH_PRICE_MULTIPLIERS, cfg.days * cfg.items),
            "price": np.tile(np.outer(items.list_price, TRUTH_PRICE_MULTIPLIERS).ravel(), cfg.days),
            "expected_units": demand.ravel(),
        }
    ).to_parquet(out.truth_demand_path, index=False)


def _write_truth(cfg: WorldConfig, out: Settings, sim: Simulator) -> None:
    truth, users, items = out.truth_dir, sim.users, sim.items
    identity_truth(users).to_parquet(out.truth_identity_path, index=False)
    pd.DataFrame(
        {
            "user_id": users.ids,
            "price_sensitivity": users.beta,
            "visit_rate": users.visit_rate,
            "signup_day": users.signup_day,
            "dormant_day": users.dormant_day,
            "churn_day": users.churn_day,
            "p_store": users.p_store,
            **{f"taste_{j}": users.taste[:, j] for j in range(cfg.taste_dim)},
            # The drifted interest that set the category mix on the last day (taste plus a drifting deviation).
            **{f"interest_{j}": sim.interest[:, j] for j in range(cfg.taste_dim)},
        }
    ).to_parquet(truth / "users.parquet", index=False)
    pd.DataFrame(
        {
            "item_id": items.ids,
            "appeal": items.appeal,
            "level_logit": items.level_logit,
            "list_price": items.list_price,
            "target_stock": items.target_stock,
            "replenish_every": items.replenish_every,
            "kind": items.kind,
            "shelf_life": items.shelf_life,
            "sell_by_day": items.sell_by_day,
            "salvage_value": items.salvage_value,
            "category": items.category,
            "within_category_share": within_category_share(items),
            "consumable": items.consumable,
            "repurchase_interval_days": items.repurchase_interval,
            **{f"vec_{j}": items.vec[:, j] for j in range(cfg.taste_dim)},
        }
    ).to_parquet(out.truth_items_path, index=False)
    _complement_table(items).to_parquet(out.truth_complements_path, index=False)
    config = {k: str(v) for k, v in asdict(cfg).items()}
    out.truth_world_path.write_text(json.dumps(config, indent=2))


def _complement_table(items: Items) -> pd.DataFrame:
    """One row per (item, complement): what a purchase of the item makes relevant for two weeks."""
    rows, slots = np.nonzero(items.complements >= 0)
    return pd.DataFrame(
        {"item_id": items.ids[rows], "complement_id": items.ids[items.complements[rows, slots]], "rank": slots}
    )


# Everything a world consists of, as Settings attributes: written staged, then swapped in together.
WORLD_PATHS = ("events_dir", "truth_dir", "items_path", "prices_path", "inventory_path", "identity_links_path")


def _swap_in(staged: Settings, settings: Settings) -> None:
    """Replace the world's files only once the whole new world is written."""
    for attr in WORLD_PATHS:
        target = getattr(settings, attr)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        getattr(staged, attr).rename(target)
    settings.identity_map_path.unlink(missing_ok=True)  # derived from the links just replaced
