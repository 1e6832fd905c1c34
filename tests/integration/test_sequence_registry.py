"""`siyu tune sequence` and `siyu train sequence` through real MLflow: nested trial runs, aliases, a faithful reload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner, Result

from siyu.cli import app
from siyu.settings import Settings
from siyu.tracking import CHALLENGER, CHAMPION, alias_version, client
from siyu.world.entities import WorldConfig
from siyu.world.generator import generate_world
from tests.conftest import make_settings
from training.sequence import registry, tuning
from training.sequence.data import leave_last_out
from training.sequence.recommender import SASRecRecommender
from training.sequence.registry import EXPERIMENT, load_champion, read_sequences, recommend

pytestmark = pytest.mark.integration

runner = CliRunner()


def _siyu(settings: Settings, *args: str) -> Result:
    env = {
        "SIYU_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "SIYU_MLFLOW_ARTIFACT_ROOT": str(settings.mlflow_artifact_root),
    }
    return runner.invoke(app, [*args, "--data-dir", str(settings.data_dir)], env=env)


def _text(result: Result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Result, SASRecRecommender]]:
    """A tiny world tuned with two short trials by the CLI, and the in-memory model it registered."""
    settings = make_settings(tmp_path_factory.mktemp("sequence-registry"))
    generate_world(WorldConfig(users=300, items=40, days=10), settings, progress=False)
    registered: list[SASRecRecommender] = []
    original = tuning.log_and_register

    def spy(settings_: Settings, recommender: SASRecRecommender, split: object) -> object:
        registered.append(recommender)
        return original(settings_, recommender, split)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tuning, "log_and_register", spy)
        result = _siyu(settings, "tune", "sequence", "--trials", "2", "--trial-minutes", "0.2")
    assert result.exit_code == 0, result.output
    yield settings, result, registered[0]


def test_tune_logs_nested_trials_under_a_parent_and_registers_a_champion(tuned) -> None:
    settings, result, _ = tuned
    output = _text(result)
    assert "trial 0:" in output and "trial 1:" in output
    assert "best valid NDCG@10" in output and "version 1: @challenger, @champion" in output
    assert alias_version(settings, settings.sequence_model_name, CHAMPION) == "1"

    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(EXPERIMENT)
    runs = mlflow_client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2
    assert parent.data.params["data_version"] and parent.data.params["best_hidden"] in {"32", "64", "128"}
    for name in ("valid_ndcg10", "test_ndcg10", "test_hr10", "test_mrr"):
        assert np.isfinite(parent.data.metrics[name]), name
    for child in children:
        assert {"train_seconds", "sequences_per_second"} <= set(child.data.metrics)
        assert float(child.data.params["budget_seconds"]) == pytest.approx(12.0)
        assert mlflow_client.get_metric_history(child.info.run_id, "valid_ndcg10"), "no per-epoch NDCG@10"
    version = mlflow_client.get_model_version(settings.sequence_model_name, "1")
    assert version.run_id == parent.info.run_id


def test_the_champion_scores_exactly_as_the_model_before_logging(tuned) -> None:
    settings, _, trained = tuned
    split = leave_last_out(read_sequences(settings)[0])
    served = load_champion(settings)
    users, cut = split.test.users, split.test.cut
    np.testing.assert_array_equal(served.score(split.data, users, cut), trained.score(split.data, users, cut))
    np.testing.assert_allclose(served.intent(split.data, users, cut), trained.intent(split.data, users, cut))

    # The pyfunc face: top-k ids and intent per sequence, items it has never seen ignored.
    rows = pd.DataFrame(
        {
            "sequence_id": ["a", "a", "b", "c"],
            "item_id": [str(v) for v in trained.item_vocab[:3]] + ["never-seen"],
            "action": ["view", "add_to_cart", "view", "view"],
        }
    )
    answer = mlflow.pyfunc.load_model(f"models:/{settings.sequence_model_name}@{CHAMPION}").predict(
        rows, params={"k": 5}
    )
    expected = recommend(trained, rows, k=5)
    assert list(answer["sequence_id"]) == ["a", "b", "c"]
    assert [list(x) for x in answer["items"]] == [list(x) for x in expected["items"]]
    np.testing.assert_allclose(answer["intent"], expected["intent"], rtol=1e-6)
    assert not set(answer["items"][0]) & set(rows["item_id"][:2])  # seen items are not recommended back
    assert answer["intent"][2] == pytest.approx(trained.intent_base_rate)


def test_a_second_registration_is_a_challenger_and_leaves_the_champion(tuned) -> None:
    settings, _, _ = tuned
    with pytest.MonkeyPatch.context() as patch:  # a big store's registration ranks a fixed sample of questions
        patch.setattr(registry, "GATE_QUESTIONS", 50)
        result = _siyu(settings, "train", "sequence", "--budget-minutes", "0.05")
    assert result.exit_code == 0, result.output
    run = client(settings).get_model_version(settings.sequence_model_name, "2").run_id
    assert client(settings).get_run(run).data.metrics["test_users"] == 50
    assert "version 2: @challenger" in _text(result) and "@champion" not in _text(result)
    assert alias_version(settings, settings.sequence_model_name, CHALLENGER) == "2"
    assert alias_version(settings, settings.sequence_model_name, CHAMPION) == "1"
    aliases = client(settings).get_model_version(settings.sequence_model_name, "2").aliases
    assert aliases == [CHALLENGER]


def test_a_bad_dataset_exits_1_and_registers_nothing(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n1 3 4\n")
    result = _siyu(settings, "tune", "sequence", "--trials", "1", "--dataset", str(bad), "--format", "user-item")
    assert result.exit_code == 1
    assert "bad.txt line 2: expected `user item`" in _text(result)
    assert client(settings).search_registered_models() == []
    with pytest.raises(LookupError, match="siyu train sequence"):
        load_champion(settings)


def test_a_pruned_trial_stops_training_and_its_run_is_marked_killed(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna

    path = tmp_path / "cycles.txt"
    path.write_text("".join(f"{u} {(u + k) % 12 + 1}\n" for u in range(60) for k in range(6)))
    data, fingerprint = read_sequences(settings, path, "user-item")
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda trial: trial.number == 1)
    result = tuning.tune(
        settings, leave_last_out(data), fingerprint, n_trials=2, trial_budget_seconds=2.0, register=False
    )
    assert [t.state for t in result.trials] == ["complete", "pruned"]
    assert result.trials[1].epochs == 1 and result.best_value == result.trials[0].value
    assert result.registration is None and not torch.are_deterministic_algorithms_enabled()
    runs = client(settings).search_runs([client(settings).get_experiment_by_name(EXPERIMENT).experiment_id])
    status = {r.data.tags.get("optuna_trial", "parent"): r.info.status for r in runs}
    assert status == {"parent": "FINISHED", "0": "FINISHED", "1": "KILLED"}


def test_bootstrap_trains_a_first_champion_once_and_skips_bad_data(tmp_path: Path, capsys) -> None:
    from training.sequence.cli import bootstrap_sequence

    empty = make_settings(tmp_path / "empty")
    bootstrap_sequence(empty, budget_seconds=2)  # no events: reported, not raised (serving works without)
    assert alias_version(empty, empty.sequence_model_name, CHAMPION) is None
    settings = make_settings(tmp_path / "world")
    generate_world(WorldConfig(users=200, items=30, days=7), settings, progress=False)
    bootstrap_sequence(settings, budget_seconds=2)
    first = alias_version(settings, settings.sequence_model_name, CHAMPION)
    bootstrap_sequence(settings, budget_seconds=2)
    assert first is not None and alias_version(settings, settings.sequence_model_name, CHAMPION) == first
    output = " ".join(capsys.readouterr().err.split())
    assert "no decision-path model trained" in output and "already registered" in output
