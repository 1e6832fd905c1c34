"""The decision-path model's contest for the champion gate: both versions rank the same validation questions.

The split is rebuilt from today's event log (leave-last-out), and each version scores it through its own
vocabulary, so a champion trained before the catalogue grew is judged on the same questions as a
challenger trained after.
"""

from __future__ import annotations

from siyu.settings import Settings
from training.promotion import PromotionError, Rule, Scorer
from training.sequence.data import SequenceDataError, leave_last_out
from training.sequence.evaluation import GATE_QUESTIONS, evaluate
from training.sequence.registry import load_version, read_sequences


def sequence_rule(settings: Settings) -> Rule:
    return Rule(
        decide="valid_ndcg10",
        guard="valid_hr10",
        margin=settings.promote_ndcg_margin,
        tolerance=0.002,
        higher_is_better={"valid_ndcg10": True, "valid_hr10": True, "valid_mrr": True, "questions": True},
    )


def sequence_scorer(settings: Settings, challenger: str, champion: str | None) -> Scorer:
    try:
        split = leave_last_out(read_sequences(settings)[0])
    except SequenceDataError as exc:
        raise PromotionError(f"no validation questions to judge on: {exc}") from exc
    models = {v: load_version(settings, v) for v in (challenger, champion) if v is not None}

    def score(version: str) -> dict[str, float]:
        metrics = evaluate(models[version], split, "valid", max_users=GATE_QUESTIONS)
        return {
            "valid_ndcg10": metrics["ndcg@10"],
            "valid_hr10": metrics["hr@10"],
            "valid_mrr": metrics["mrr"],
            "questions": float(metrics["users"]),
        }

    return score
