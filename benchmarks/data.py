"""Data-layer throughput: generator (events/s, peak RSS), importers (rows/s), identity resolution (P/R)."""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from siyu.data.identity import build_identity_map, pairwise_precision_recall
from siyu.data.importers import import_file
from siyu.settings import Settings
from siyu.world.entities import WorldConfig
from siyu.world.generator import generate_world


def _generate(users: int, items: int, days: int, out: Path) -> dict:
    report = generate_world(
        WorldConfig(users=users, items=items, days=days, seed=1), Settings(data_dir=out), progress=False
    )
    return report.__dict__


def generator_run(users: int, items: int, days: int, out: Path) -> dict:
    """Generate in a fresh process so its peak RSS is the generator's alone."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_generate, users, items, days, out).result()


def run(quick: bool, shared_data: Path) -> tuple[dict, list[str]]:
    size = (20_000, 1_000, 30) if quick else (270_000, 5_000, 100)
    figures: dict[str, object] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        gen = generator_run(*size, world)
        figures |= {
            "generator_events": gen["events"],
            "generator_seconds": round(gen["seconds"], 2),
            "generator_events_per_s": round(gen["events_per_second"]),
            "generator_peak_rss_mb": round(gen["peak_rss_mb"]),
            "generator_demand_truth_seconds": round(gen["demand_truth_seconds"], 2),
            "generator_events_per_s_without_truth": round(
                gen["events"] / max(gen["seconds"] - gen["demand_truth_seconds"], 1e-9)
            ),
        }
        notes.append(
            f"generator: {size[0]:,} users x {size[1]:,} items x {size[2]} days, one process; the seconds include"
            " the true demand curves (every item x day x 15 prices, summed over users), also shown apart"
        )
        settings = Settings(data_dir=world)
        started = time.perf_counter()
        build_identity_map(settings)
        identity_seconds = time.perf_counter() - started
        precision, recall = pairwise_precision_recall(
            pd.read_parquet(settings.identity_map_path), pd.read_parquet(settings.truth_identity_path)
        )
        figures |= {
            "identity_precision": precision,
            "identity_recall": recall,
            "identity_seconds": round(identity_seconds, 2),
        }
        for fmt, path in (
            ("online-retail", shared_data / "online_retail" / "online-retail.csv.gz"),
            ("taobao", shared_data / "taobao" / "UserBehavior_head.csv"),
        ):
            report = import_file(path, fmt, Settings(data_dir=Path(tmp) / f"import-{fmt}"))
            key = fmt.replace("-", "_")
            figures |= {
                f"import_{key}_rows": report.rows_read,
                f"import_{key}_seconds": round(report.seconds, 2),
                f"import_{key}_rows_per_s": round(report.rows_read / report.seconds),
            }
            notes.append(f"import {fmt}: {path.name}, {report.rows_read:,} rows")
    return figures, notes
