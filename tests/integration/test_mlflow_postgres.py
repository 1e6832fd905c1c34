"""MLflow on PostgreSQL (the production backend): the same training code logs, registers and serves from it."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import mlflow
import pytest
from typer.testing import CliRunner

from features import repo
from siyu.cli import app
from siyu.settings import Settings
from siyu.tracking import CHAMPION, alias_version, use_registry
from tests.conftest import in_ci, make_settings
from training.conversion import train_and_register
from training.dataset import MODEL_FEATURES
from training.pipeline import build_features

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@pytest.fixture
def postgres_uri() -> Iterator[str]:
    """A throw-away database on the local PostgreSQL server, dropped afterwards."""
    import psycopg2

    try:
        admin = psycopg2.connect(ADMIN_DSN)
    except psycopg2.OperationalError as exc:
        if in_ci():
            pytest.fail(f"CI=true but PostgreSQL is not reachable: {exc}")
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    admin.autocommit = True
    name = f"siyu_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def test_train_register_and_load_champion_from_postgres(small_world: Settings, postgres_uri: str, tmp_path) -> None:
    settings = make_settings(tmp_path, mlflow_tracking_uri=postgres_uri)
    shutil.copytree(small_world.data_dir, settings.data_dir)
    build_features(settings)
    result = train_and_register(settings, max_rows=20_000)
    try:
        assert alias_version(settings, settings.conversion_model_name, CHAMPION) == result.version == "1"
        run = mlflow.get_run(result.run_id)
        assert run.data.metrics["auc"] == pytest.approx(result.metrics["auc"])
        assert run.data.params["data_version"]
        use_registry(settings)
        booster = mlflow.lightgbm.load_model(f"models:/{settings.conversion_model_name}@{CHAMPION}")
        assert booster.feature_name() == list(MODEL_FEATURES)
        # A second run becomes @challenger; @champion stays where it was until a promotion.
        second = train_and_register(settings, max_rows=20_000)
        assert second.version == "2" and second.aliases == ["challenger"]
        assert alias_version(settings, settings.conversion_model_name, CHAMPION) == "1"
        # The champion gate and the listing on the same backend: the verdict moves the alias or leaves it.
        env = {
            "SIYU_DATA_DIR": str(settings.data_dir),
            "SIYU_MLFLOW_TRACKING_URI": postgres_uri,
            "SIYU_MLFLOW_ARTIFACT_ROOT": str(settings.mlflow_artifact_root),
            "SIYU_FEAST_PROJECT": settings.feast_project,
            "COLUMNS": "200",
        }
        verdict = CliRunner().invoke(app, ["promote", "conversion"], env=env)
        champion = alias_version(settings, settings.conversion_model_name, CHAMPION)
        assert (verdict.exit_code, champion) in ((0, "2"), (1, "1")), verdict.output
        assert "challenger" in verdict.output and "auc" in verdict.output
        listing = CliRunner().invoke(app, ["models", "list"], env=env)
        assert listing.exit_code == 0 and " 1 " in listing.output and " 2 " in listing.output, listing.output
    finally:
        repo.feature_store(settings).teardown()
