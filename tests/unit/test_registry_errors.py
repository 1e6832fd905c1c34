"""Model commands against a registry that cannot be reached: one sentence, exit 1, no password, no wait."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from siyu.cli import app
from siyu.settings import Settings

runner = CliRunner()


@pytest.fixture
def unreachable(settings: Settings) -> dict[str, str]:
    with socket.socket() as probe:  # a port nothing listens on: bound, then released
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {"SIYU_MLFLOW_TRACKING_URI": f"postgresql://siyu:hunter2@127.0.0.1:{port}/mlflow"}


@pytest.mark.parametrize(
    "command",
    [
        ["train", "conversion"],
        ["promote", "conversion"],
        ["promote", "sequence"],
        ["models", "list"],
        ["evaluate", "conversion"],
    ],
)
def test_an_unreachable_registry_is_named_at_once(command: list[str], settings: Settings, unreachable) -> None:
    result = runner.invoke(app, [*command, "--data-dir", str(settings.data_dir)], env=unreachable)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "cannot be reached" in text and "hunter2" not in text and "***" in text


def test_training_on_an_empty_log_says_so(settings: Settings) -> None:
    result = runner.invoke(app, ["train", "conversion", "--data-dir", str(settings.data_dir)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "error:" in result.output


def test_missing_features_are_named_with_the_fix(small_world: Settings, tmp_path) -> None:
    """Events exist but features were never built: one sentence naming the command that builds them."""
    import shutil

    from tests.conftest import make_settings

    world = make_settings(tmp_path)
    shutil.copytree(small_world.data_dir, world.data_dir)
    env = {"SIYU_MLFLOW_TRACKING_URI": world.mlflow_tracking_uri, "SIYU_FEAST_PROJECT": world.feast_project}
    result = runner.invoke(app, ["train", "conversion", "--data-dir", str(world.data_dir)], env=env)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "siyu features build" in text and "Traceback" not in text
