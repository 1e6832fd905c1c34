"""The conversion ceiling reads the world's latents back exactly and ranks them against the model."""

from __future__ import annotations

import numpy as np
import pytest

from features.repo import feature_store
from training.conversion_ceiling import latent_ceiling, world_latents
from training.dataset import build_training_set

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_latents_rebuild_the_worlds_purchase_logit(trained_system) -> None:
    settings, _ = trained_system
    frame = build_training_set(settings, feature_store(settings), max_rows=20_000).frame
    latents = world_latents(settings, frame)
    assert latents.notna().all().all()
    # What is left of the true logit is the complement/repurchase boost: never negative, and zero for most
    # views (no recent complement, nothing due); a term read back wrong would leave it noisy on every row.
    boost = latents["true_boost"].to_numpy()
    assert boost.min() > -1e-6 and np.mean(np.abs(boost) < 1e-6) > 0.5


def test_the_stage_is_worth_more_than_the_model_sees(trained_system) -> None:
    settings, _ = trained_system
    ceiling = latent_ceiling(settings, max_rows=20_000)
    assert ceiling["auc_with_true_stage"] > ceiling["auc"]
    assert ceiling["oracle_auc"] > ceiling["auc"]
