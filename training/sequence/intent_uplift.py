"""Do the decision-path model's readings make the conversion model better? Measured on the same rows.

The conversion training set is built once; the decision-path model learns only from events before the
holdout cutoff, so holdout rows' features come from a model that never saw their period. LightGBM is then
fitted on the same training rows without them, with `session_intent`, with `path_affinity` and with both,
and every fit scores the same holdout rows (beside the oracle's AUC on them, on generated data).

One caveat makes the gains a lower bound: training rows' features are read by a model that learnt from
those same sessions, so they are sharper in training than on the holdout, and LightGBM trusts them a
little too much.
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
from training.sequence.path_features import PATH_FEATURES, path_features
from training.sequence.recommender import SASRecRecommender
from training.sequence.sources import event_steps

VARIANTS: dict[str, tuple[str, ...]] = {
    "without": (),
    "with_intent": ("session_intent",),
    "with_affinity": ("path_affinity",),
    "with_both": PATH_FEATURES,
}


def intent_uplift(
    settings: Settings, budget_seconds: float, max_rows: int | None = 400_000, seed: int = 0
) -> dict[str, float]:
    """Holdout AUC / log loss of the conversion model for each of VARIANTS, on the same rows."""
    data = build_training_set(settings, feature_store(settings), max_rows=max_rows, seed=seed)
    events = attach_user_ids(
        read_table(settings.events_dir, schema.EVENT_SCHEMA),
        read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA),
    )
    past = events[events["event_time"] < data.cutoff]
    recommender = SASRecRecommender(SequenceModelConfig(budget_seconds=budget_seconds, seed=seed))
    recommender.fit(leave_last_out(from_steps(event_steps(past, past["user_id"]))))
    frame = data.frame.join(path_features(recommender, events, data.frame))
    train, holdout = frame[frame["event_timestamp"] < data.cutoff], frame[frame["event_timestamp"] >= data.cutoff]
    truth = load_truth(settings)
    out: dict[str, float] = {}
    for label, extra in VARIANTS.items():
        features = (*MODEL_FEATURES, *extra)
        booster = fit(train, seed=seed, features=features)
        metrics = evaluate(booster, holdout, truth, features=features)
        out |= {f"auc_{label}": metrics["auc"], f"logloss_{label}": metrics["logloss"]}
        out |= {k: metrics[k] for k in ("oracle_auc", "oracle_logloss") if k in metrics}
        if extra:
            gain = booster.feature_importance("gain")
            out[f"gain_share_{label}"] = float(gain[-len(extra) :].sum() / gain.sum()) if gain.sum() > 0 else 0.0
    labels = holdout["label"].to_numpy()
    out |= {f"{name}_auc_alone": auc(labels, holdout[name].fillna(-1e9).to_numpy()) for name in PATH_FEATURES}
    out["holdout_rows"] = float(len(holdout))
    out["sequence_train_seconds"] = recommender.result.train_seconds
    return out
