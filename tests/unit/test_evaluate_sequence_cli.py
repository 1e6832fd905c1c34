"""`siyu evaluate sequence --dataset` as an ML engineer runs it: a table, JSON keyed by model, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from siyu.cli import app

runner = CliRunner()


def _cycles(path: Path, users: int = 150, items: int = 12, length: int = 8) -> Path:
    """Each user walks the item cycle 1 -> 2 -> ... from a random start: order is everything."""
    rng = np.random.default_rng(0)
    lines = []
    for user in range(users):
        start = int(rng.integers(items))
        lines += [f"{user} {(start + k) % items + 1}" for k in range(length)]
    lines.insert(5, "")  # a blank line is skipped, not an error
    path.write_text("\n".join(lines) + "\n")
    return path


def _evaluate(*args: str):
    return runner.invoke(app, ["evaluate", "sequence", *args])


def test_evaluate_on_a_user_item_file_writes_every_model_and_the_model_learns_order(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = _evaluate("--dataset", str(_cycles(tmp_path / "cycles.txt")), "--budget-minutes", "0.5", "--out", str(out))
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    models = written["models"]
    assert {"popularity", "personal_top_frequency", "transitions", "sasrec", "sasrec_shuffled_order"} <= set(models)
    assert {"sasrec_blend", "baselines_blend"} <= set(models) & set(written["seen_kept"])
    assert set(written["blend_weights"]["sasrec_blend (seen excluded)"]) <= set(models)
    assert "sasrec" not in written["blend_weights"]["baselines_blend (seen kept)"]
    assert "weights of sasrec_blend (seen kept)" in result.output
    assert "sasrec_gated" in written["seen_kept"] and "repeat_rate" in written["gate"]
    for row in models.values():
        assert {"ndcg@10", "hr@10", "mrr", "train_seconds", "infer_ms_per_user"} <= set(row)
    # The next item is always the successor of the last one: transitions and the model get it, popularity cannot.
    assert models["transitions"]["hr@10"] == 1.0
    assert models["sasrec"]["hr@10"] > 0.9
    assert models["sasrec_blend"]["hr@10"] > 0.9  # a blend tuned on validation keeps what knows the order
    assert models["sasrec"]["ndcg@10"] > models["sasrec_shuffled_order"]["ndcg@10"]
    assert models["popularity"]["ndcg@10"] < 0.7


def test_bad_dataset_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("1 10\n1 eleven\n")
    result = _evaluate("--dataset", str(words))
    assert result.exit_code == 1 and "line 2" in result.output
    single = tmp_path / "single.txt"
    single.write_text("7 1\n7 2\n")
    result = _evaluate("--dataset", str(single))
    assert result.exit_code == 1 and "3 or more steps" in result.output
    result = _evaluate("--dataset", str(tmp_path / "missing.txt"))
    assert result.exit_code == 1 and "does not exist" in result.output
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    result = _evaluate("--dataset", str(empty))
    assert result.exit_code == 1 and "empty" in result.output
