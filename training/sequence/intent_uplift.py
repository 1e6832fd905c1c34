"""Does the decision-path model's purchase intent make the conversion model better? Measured, same rows.

The conversion training set is built once; the decision-path model learns only from events before the
holdout cutoff, so holdout rows' intent comes from a model that never saw their period. LightGBM is then
fitted twice on the same training rows, with and without `session_intent`, and both score the same
holdout rows (and, on generated data, beside the oracle's AUC on them).

One caveat makes the gain a lower bound: training rows' intent is read by a model that learnt from those
same sessions, so it is sharper in training than on the holdout, and LightGBM trusts it a little too much.
"""

from __future__ import annotations

from features.repo import feature_store
from siyu.data import schema
from siyu.data.identity import attach_user_ids
from siyu.data.store import read_table
from siyu.metrics import auc
from siyu.settings import Settings
from training.conversion import evaluate, fit, load_truth
from training.dataset import MODEL_FEATURES, build_training_set
from training.sequence.data import from_steps, leave_last_out
from training.sequence.model import SequenceModelConfig
from training.sequence.recommender import SASRecRecommender
from training.sequence.session_intent import session_intent
from training.sequence.sources import event_steps

INTENT_FEATURE = "session_intent"


def intent_uplift(
    settings: Settings, budget_seconds: float, max_rows: int | None = 400_000, seed: int = 0
) -> dict[str, float]:
    """Holdout AUC / log loss of the conversion model without and with the intent feature, on the same rows."""
    data = build_training_set(settings, feature_store(settings), max_rows=max_rows, seed=seed)
    events = attach_user_ids(
        read_table(settings.events_dir, schema.EVENT_SCHEMA),
        read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA),
    )
    past = events[events["event_time"] < data.cutoff]
    recommender = SASRecRecommender(SequenceModelConfig(budget_seconds=budget_seconds, seed=seed))
    recommender.fit(leave_last_out(from_steps(event_steps(past, past["user_id"]))))
    frame = data.frame.assign(**{INTENT_FEATURE: session_intent(recommender, events, data.frame)})
    train, holdout = frame[frame["event_timestamp"] < data.cutoff], frame[frame["event_timestamp"] >= data.cutoff]
    truth = load_truth(settings)
    out: dict[str, float] = {}
    for label, features in (("without_intent", MODEL_FEATURES), ("with_intent", (*MODEL_FEATURES, INTENT_FEATURE))):
        booster = fit(train, seed=seed, features=features)
        metrics = evaluate(booster, holdout, truth, features=features)
        out |= {f"auc_{label}": metrics["auc"], f"logloss_{label}": metrics["logloss"]}
        if label == "with_intent":
            gain = booster.feature_importance("gain")
            out["intent_gain_share"] = float(gain[-1] / gain.sum()) if gain.sum() > 0 else 0.0
            out |= {k: metrics[k] for k in ("oracle_auc", "oracle_logloss") if k in metrics}
    out["intent_auc_on_labels"] = auc(holdout["label"].to_numpy(), holdout[INTENT_FEATURE].to_numpy())
    out["holdout_rows"] = float(len(holdout))
    out["sequence_train_seconds"] = recommender.result.train_seconds
    return out
