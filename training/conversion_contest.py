"""The conversion model's contest for the champion gate: both versions score one time-based holdout.

The holdout is rebuilt from today's data once (the same point-in-time join training uses), and each
version predicts it from the feature columns it was trained on, by name. A challenger whose feature
list differs from the champion's is refused unless the caller accepts the change: a new feature set
is a decision to make knowingly, and the comparison is still like for like because both score the
same rows.
"""

from __future__ import annotations

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

from features.repo import feature_store
from siyu.metrics import auc, expected_calibration_error, logloss
from siyu.settings import Settings
from siyu.tracking import use_registry
from training.dataset import TrainingSet, build_training_set
from training.promotion import PromotionError, Rule, Scorer


def conversion_rule(settings: Settings) -> Rule:
    return Rule(
        decide="auc",
        guard="logloss",
        margin=settings.promote_auc_margin,
        tolerance=0.0005,
        higher_is_better={"auc": True, "logloss": False, "ece": False, "rows": True},
    )


def load_version(settings: Settings, version: str) -> lgb.Booster:
    use_registry(settings)
    return mlflow.lightgbm.load_model(f"models:/{settings.conversion_model_name}/{version}")


def conversion_scorer(
    settings: Settings, challenger: str, champion: str | None, accept_feature_change: bool = False
) -> Scorer:
    """A scorer over today's holdout; raises PromotionError when the two versions cannot be compared."""
    boosters = {v: load_version(settings, v) for v in (challenger, champion) if v is not None}
    if champion is not None and not accept_feature_change:
        new, old = boosters[challenger].feature_name(), boosters[champion].feature_name()
        if new != old:
            added, dropped = sorted(set(new) - set(old)), sorted(set(old) - set(new))
            raise PromotionError(
                f"challenger {challenger} was trained on different features than champion {champion}"
                f" (added {added or 'none'}, dropped {dropped or 'none'}); pass --accept-feature-change to compare"
                " them anyway"
            )
    try:
        holdout = todays_holdout(settings)
    except ValueError as exc:
        raise PromotionError(str(exc)) from exc

    def score(version: str) -> dict[str, float]:
        try:
            return holdout_metrics(boosters[version], holdout, version)
        except ValueError as exc:
            raise PromotionError(str(exc)) from exc

    return score


def todays_training_set(settings: Settings) -> TrainingSet:
    """Today's training set; ValueError when its time-based holdout has no rows or one class."""
    data = build_training_set(settings, feature_store(settings), seed=settings.seed)
    if data.holdout.empty or data.holdout["label"].nunique() < 2:
        raise ValueError("today's holdout has no rows or only one class: there is nothing to judge a model on")
    return data


def todays_holdout(settings: Settings) -> pd.DataFrame:
    """The time-based holdout of today's training set (see `todays_training_set`)."""
    return todays_training_set(settings).holdout


def predict_holdout(booster: lgb.Booster, holdout: pd.DataFrame, version: str) -> np.ndarray:
    """P(purchase) per holdout row from the columns `booster` was trained on; ValueError when one is missing."""
    missing = [f for f in booster.feature_name() if f not in holdout.columns]
    if missing:
        raise ValueError(f"version {version} needs features today's pipeline does not build: {missing}")
    return booster.predict(holdout[booster.feature_name()])


def holdout_metrics(booster: lgb.Booster, holdout: pd.DataFrame, version: str) -> dict[str, float]:
    probs = predict_holdout(booster, holdout, version)
    labels = holdout["label"].to_numpy()
    return {
        "auc": auc(labels, probs),
        "logloss": logloss(labels, probs),
        "ece": expected_calibration_error(labels, probs),
        "rows": float(len(holdout)),
    }
