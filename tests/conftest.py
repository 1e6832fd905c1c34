"""Shared fixtures: isolated settings per test, a small generated world, a trained system, free ports."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from siyu.settings import Settings, settings_under
from siyu.world.entities import WorldConfig
from siyu.world.generator import generate_world


def _find_shared_data() -> Path:
    """The read-only real samples: $SIYU_SHARED_DATA, else shared/data beside the checkout."""
    candidates = [Path(os.environ["SIYU_SHARED_DATA"])] if os.environ.get("SIYU_SHARED_DATA") else []
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED_DATA = _find_shared_data()
REDIS_URL = "redis://127.0.0.1:6379/0"

# A world small enough to generate in a second, big enough for identity merges and stock-outs.
SMALL_WORLD = WorldConfig(users=600, items=120, days=21, seed=7)
# The world the trained-system fixture learns from: enough impressions for a meaningful holdout.
TRAINING_WORLD = WorldConfig(users=2500, items=300, days=45, seed=11)


def make_settings(root: Path, **overrides: object) -> Settings:
    """Settings whose every path and namespace is private to `root` (no test sees another's state)."""
    return settings_under(root, **{"feast_project": f"t{uuid.uuid4().hex[:10]}", **overrides})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A generated world shared read-only by tests (copy it before changing anything)."""
    world_settings = make_settings(tmp_path_factory.mktemp("small-world"))
    generate_world(SMALL_WORLD, world_settings, progress=False)
    return world_settings


@pytest.fixture(scope="session")
def trained_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, object]]:
    """World -> identities -> features -> online store -> @champion models: the whole offline pipeline."""
    from features import repo
    from pricing.demand.registry import train_and_register as train_demand
    from training.conversion import train_and_register
    from training.pipeline import build_features
    from training.sequence.data import leave_last_out
    from training.sequence.model import SequenceModelConfig
    from training.sequence.registry import read_sequences
    from training.sequence.registry import train_and_register as train_sequence

    system = make_settings(tmp_path_factory.mktemp("trained-system"))
    generate_world(TRAINING_WORLD, system, progress=False)
    build_features(system)
    repo.materialize(system)
    result = train_and_register(system)
    train_demand(system)
    data, fingerprint = read_sequences(system)
    train_sequence(system, leave_last_out(data), fingerprint, SequenceModelConfig(budget_seconds=15, threads=1))
    yield system, result
    repo.feature_store(system).teardown()


@pytest.fixture(scope="module")
def registry(trained_system, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The trained system's data and online store with an empty model registry of its own, set in the env so
    CLI commands read it: tests that register and promote never move the shared system's champions."""
    system, _ = trained_system
    root = tmp_path_factory.mktemp("private-registry")
    settings = system.model_copy(
        update={"mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "mlflow_artifact_root": root / "artifacts"}
    )
    patch = pytest.MonkeyPatch()
    for name in ("data_dir", "mlflow_tracking_uri", "mlflow_artifact_root", "feast_project", "online_store"):
        patch.setenv(f"SIYU_{name.upper()}", str(getattr(settings, name)))
    yield settings
    patch.undo()


@pytest.fixture(scope="session")
def server(trained_system, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """The BentoML server over the trained system, shared by every HTTP test and always stopped."""
    from serving.local.launcher import running_server

    settings, _ = trained_system
    with running_server(settings, tmp_path_factory.mktemp("server") / "bentoml.log") as base:
        yield base, settings


@pytest.fixture(scope="session")
def scratch_server(trained_system, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """A server on a copy of the trained system's data, for tests that write (events, fuzzing): the shared
    `server` and everything else reading the trained system never see what they store."""
    import shutil

    from serving.local.launcher import running_server

    system, _ = trained_system
    root = tmp_path_factory.mktemp("scratch-server")
    settings = system.model_copy(update={"data_dir": root / "data"})
    shutil.copytree(system.data_dir, settings.data_dir)
    with running_server(settings, root / "bentoml.log") as base:
        yield base, settings


def redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_shared_data() -> None:
    """The real-data tests skip on a machine without the samples, but never in CI."""
    if SHARED_DATA.is_dir():
        return
    if in_ci():
        pytest.fail(f"CI=true but the shared data samples are missing (looked in {SHARED_DATA})")
    pytest.skip(f"shared data samples not found at {SHARED_DATA} (set SIYU_SHARED_DATA)")


def require_redis() -> None:
    """Skip without Redis on a developer machine, but never in CI, where Redis must be there."""
    if redis_available():
        return
    if in_ci():
        pytest.fail("CI=true but no Redis answers on 127.0.0.1:6379")
    pytest.skip("no Redis server on 127.0.0.1:6379 (start one to run the Redis online-store tests)")


def known_user(settings: Settings) -> str:
    """The user with the most purchases in the newest feature snapshot: in the online store, with history."""
    import pandas as pd

    from features import repo

    snapshots = pd.read_parquet(repo.source_paths(settings)[repo.USER_VIEW])
    return snapshots.sort_values(["event_timestamp", "purchases_30d"]).iloc[-1]["user_id"]
