"""Conversion-model quality on a time-based holdout, next to the oracle (the world's true probabilities)."""

from __future__ import annotations

from pathlib import Path

from features import repo
from siyu.settings import Settings, settings_under
from siyu.world.entities import WorldConfig
from siyu.world.generator import generate_world
from training.conversion import train_and_register
from training.pipeline import build_features


def world_for(quick: bool) -> WorldConfig:
    return (
        WorldConfig(users=5_000, items=400, days=45, seed=3)
        if quick
        else WorldConfig(users=30_000, items=1_500, days=75, seed=3)
    )


def prepare(quick: bool, root: Path) -> tuple[Settings, dict, list[str]]:
    """Generate, featurise, materialise and train; the trained system is reused by the serving benchmark."""
    world = world_for(quick)
    settings = settings_under(root, feast_project="siyubench")
    gen = generate_world(world, settings, progress=False)
    build_features(settings)
    repo.materialize(settings)
    result = train_and_register(settings)
    m = result.metrics
    figures = {
        "auc": m["auc"],
        "logloss": m["logloss"],
        "ece": m["ece"],
        "oracle_auc": m.get("oracle_auc"),
        "oracle_logloss": m.get("oracle_logloss"),
        "auc_vs_oracle": m["auc"] / m["oracle_auc"] if m.get("oracle_auc") else None,
        "rows": int(m["train_rows"] + m["holdout_rows"]),
        "holdout_rows": int(m["holdout_rows"]),
        "train_seconds": round(m["train_seconds"], 2),
    }
    notes = [
        f"world: {world.users:,} users x {world.items:,} items x {world.days} days = {gen.events:,} events",
        "holdout: the last 20% of online impressions in time; oracle = true purchase probability x in-stock",
    ]
    return settings, figures, notes
