"""The champion gate and the registry listing, through the CLI, on the real trained system's data and Feast
store with a registry of their own (the shared system's champions are never moved)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from siyu.cli import app
from siyu.settings import Settings
from siyu.tracking import CHALLENGER, CHAMPION, alias_version, client
from training.conversion import train_and_register
from training.dataset import MODEL_FEATURES

pytestmark = [pytest.mark.integration, pytest.mark.slow]
runner = CliRunner()
# A model that can barely learn: two leaves, a tiny step, few rounds' worth of progress.
WEAK = {"num_leaves": 2, "learning_rate": 0.002}


def _promote(*args: str):
    return runner.invoke(app, ["promote", *args])


def test_a_better_challenger_is_promoted_and_a_worse_one_refused(registry: Settings) -> None:
    name = registry.conversion_model_name
    weak = train_and_register(registry, params=WEAK)
    assert alias_version(registry, name, CHAMPION) == weak.version  # the first version is champion by default
    strong = train_and_register(registry)
    assert alias_version(registry, name, CHALLENGER) == strong.version
    result = _promote("conversion")
    assert result.exit_code == 0, result.output
    assert "promoted" in result.output and "auc" in result.output
    assert alias_version(registry, name, CHAMPION) == strong.version

    worse = train_and_register(registry, params=WEAK)
    refused = _promote("conversion")
    assert refused.exit_code == 1
    assert "not promoted" in refused.output and "below the margin" in refused.output
    assert alias_version(registry, name, CHAMPION) == strong.version  # untouched
    assert alias_version(registry, name, CHALLENGER) == worse.version

    listing = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    for version in (weak.version, strong.version, worse.version):
        assert f" {version} " in listing.output
    rows = [line.split("│") for line in listing.output.splitlines() if line.count("│") >= 5]
    aliases = {cells[2].strip(): cells[3].strip() for cells in rows if "conversion" in cells[1]}
    assert aliases[strong.version] == CHAMPION and aliases[worse.version] == CHALLENGER and aliases[weak.version] == ""
    assert "auc" in listing.output


def test_a_challenger_on_other_features_is_refused_unless_accepted(registry: Settings) -> None:
    name = registry.conversion_model_name
    champion = alias_version(registry, name, CHAMPION) or train_and_register(registry).version
    fewer = train_and_register(registry, features=tuple(f for f in MODEL_FEATURES if f != "session_minutes_so_far"))
    refused = _promote("conversion", "--version", fewer.version)
    assert refused.exit_code == 1
    assert "different features" in refused.output and "session_minutes_so_far" in refused.output
    assert alias_version(registry, name, CHAMPION) == champion
    judged = _promote("conversion", "--version", fewer.version, "--accept-feature-change")
    assert "challenger" in judged.output and "auc" in judged.output  # compared on the same rows, either way


def test_an_unknown_version_is_named(registry: Settings) -> None:
    result = _promote("conversion", "--version", "999")
    assert result.exit_code == 1
    assert "999" in result.output and "cannot be read" in result.output


def test_the_decision_path_gate_judges_both_versions_on_todays_questions(registry: Settings) -> None:
    from training.sequence.data import leave_last_out
    from training.sequence.model import SequenceModelConfig
    from training.sequence.registry import read_sequences
    from training.sequence.registry import train_and_register as train_sequence

    name = registry.sequence_model_name
    data, fingerprint = read_sequences(registry)
    split = leave_last_out(data)
    untrained = train_sequence(registry, split, fingerprint, SequenceModelConfig(max_epochs=1, hidden=8, threads=1))
    trained = train_sequence(registry, split, fingerprint, SequenceModelConfig(budget_seconds=10, threads=1))
    assert trained.metrics["valid_ndcg10"] > untrained.metrics["valid_ndcg10"] + registry.promote_ndcg_margin
    result = _promote("sequence")
    assert result.exit_code == 0, result.output
    assert "valid_ndcg10" in result.output
    assert alias_version(registry, name, CHAMPION) == trained.version
    again = _promote("sequence", "--version", untrained.version)
    assert again.exit_code == 1 and "below the margin" in again.output
    assert alias_version(registry, name, CHAMPION) == trained.version


def test_a_running_ranker_follows_the_champion_alias(registry: Settings) -> None:
    """A promotion reaches a live ranker on its next refresh tick, with no restart, and answers name it."""
    from serving.recommend.ranker import Ranker

    name = registry.conversion_model_name
    first = alias_version(registry, name, CHAMPION) or train_and_register(registry).version
    ranker = Ranker(registry)
    try:
        user = str(ranker.paths.data.user_ids[ranker.paths.data.lengths.argmax()])
        assert ranker.recommend(user, k=3).model_version == first
        newer = train_and_register(registry).version
        client(registry).set_registered_model_alias(name, CHAMPION, newer)
        assert ranker.model_version == first  # nothing changes between ticks
        ranker.refresh()
        assert ranker.model_version == newer
        result = ranker.recommend(user, k=3)
        assert result.model_version == newer and len(result.items) == 3
    finally:
        ranker.close()
        client(registry).set_registered_model_alias(name, CHAMPION, first)
