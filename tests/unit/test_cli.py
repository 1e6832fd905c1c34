"""The `siyu` CLI as a user runs it: clear messages and exit codes, nothing lost on a refused command."""

from __future__ import annotations

from typer.testing import CliRunner

from siyu.cli import app
from siyu.settings import Settings

runner = CliRunner()


def _run(settings: Settings, *args: str):
    return runner.invoke(app, [*args, "--data-dir", str(settings.data_dir)])


def test_generate_then_refuse_to_overwrite(settings: Settings) -> None:
    first = _run(settings, "data", "generate", "--users", "40", "--items", "15", "--days", "3")
    assert first.exit_code == 0, first.output
    assert "events" in first.output
    before = (settings.events_dir / "generated.parquet").read_bytes()
    again = _run(settings, "data", "generate", "--users", "40", "--items", "15", "--days", "3", "--seed", "9")
    assert again.exit_code == 1
    assert "--overwrite" in again.output
    assert (settings.events_dir / "generated.parquet").read_bytes() == before


def test_identity_reports_precision_and_recall_against_truth(settings: Settings) -> None:
    assert _run(settings, "data", "generate", "--users", "80", "--items", "20", "--days", "5").exit_code == 0
    result = _run(settings, "data", "identity")
    assert result.exit_code == 0, result.output
    assert "precision 1.0000, recall 1.0000" in result.output


def test_import_of_a_broken_file_names_the_line_and_writes_nothing(settings: Settings, tmp_path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text("1,100,7,pv,1511544070\n2,oops,7,pv,1511544071\n")
    result = _run(settings, "data", "import", str(broken), "--format", "taobao")
    assert result.exit_code == 1
    assert "broken.csv:2" in result.output
    assert not settings.events_dir.exists() or not any(settings.events_dir.iterdir())


def test_unknown_format_and_missing_features_are_usage_errors(settings: Settings, tmp_path) -> None:
    result = _run(settings, "data", "import", str(tmp_path / "x.csv"), "--format", "excel")
    assert result.exit_code == 2 and "unknown --format" in result.output
    result = _run(settings, "features", "materialize")
    assert result.exit_code == 1 and "siyu features build" in result.output


def test_steps_on_an_empty_data_dir_explain_what_to_run_first(settings: Settings) -> None:
    result = _run(settings, "features", "build")
    assert result.exit_code == 1 and "generate or import data first" in result.output
    result = runner.invoke(app, ["serve", "--data-dir", str(settings.data_dir)], env=_mlflow_env(settings))
    assert result.exit_code == 1 and "siyu bootstrap" in result.output


def _mlflow_env(settings: Settings) -> dict[str, str]:
    return {"SIYU_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri}
