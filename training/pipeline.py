"""The pipeline steps the CLI and the tests share: features from data, and the first-run bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from features import repo
from features.build import load_feature_tables
from siyu.data.identity import IdentityReport, build_identity_map
from siyu.settings import Settings
from siyu.tracking import CHAMPION, alias_version
from siyu.world.entities import WorldConfig
from siyu.world.generator import generate_world
from tiers.build import read_log
from tiers.history import tier_history
from training.conversion import ConversionResult, train_and_register

# The world `make serve` builds on a fresh machine: big enough for a meaningful model, small
# enough to generate, featurise and train in about a minute on two cores.
BOOTSTRAP_WORLD = WorldConfig(users=3000, items=400, days=60, seed=42)


@dataclass
class FeatureBuildReport:
    identity: IdentityReport
    user_rows: int
    item_rows: int

    def summary(self) -> str:
        return f"{self.identity.summary()}; {self.user_rows:,} user and {self.item_rows:,} item snapshots"


def build_features(settings: Settings) -> FeatureBuildReport:
    """Resolve identities, compute point-in-time snapshots (tiers every SIYU_TIER_EVERY_DAYS days) and register
    them with Feast."""
    identity = build_identity_map(settings)
    tables = load_feature_tables(settings)
    events, items = read_log(settings)
    tables.user_tiers = tier_history(events, items, settings.tier_every_days)
    repo.write_sources(tables, settings)
    repo.apply(settings)
    return FeatureBuildReport(identity, len(tables.user), len(tables.item))


def has_champion(settings: Settings) -> bool:
    return alias_version(settings, settings.conversion_model_name, CHAMPION) is not None


def bootstrap(
    settings: Settings, world: WorldConfig = BOOTSTRAP_WORLD, console: Console | None = None
) -> ConversionResult | None:
    """Make a servable system from nothing: data (if none), features, online store, a @champion model."""
    console = console or Console(stderr=True)
    if has_champion(settings):
        console.print(
            f"[green]@{CHAMPION}[/] '{settings.conversion_model_name}' already registered: nothing to bootstrap"
        )
        return None
    if not any(settings.events_dir.glob("*.parquet")):
        console.print(f"generating a synthetic world: {world}")
        console.print(generate_world(world, settings).summary())
    with console.status("resolving identities, computing snapshots, applying the Feast repo"):
        report = build_features(settings)
    console.print(report.summary())
    repo.materialize(settings)
    result = train_and_register(settings, console=console)
    console.print(result.summary())
    return result
