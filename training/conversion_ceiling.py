"""How close any conversion model can get to the oracle: LightGBM given the world's own latent quantities.

The oracle's purchase probability is a logistic function of terms the brand never observes: the user's
taste for the item's category and for the item within it, their price sensitivity, the complement and
repurchase boost of their recent purchases, and the session's intent stage (`siyu.world.simulate`).
Refitting the conversion model with each of those added as an exact feature, on the same rows and
holdout, measures what each is worth; the last variant that still lacks one latent is the ceiling for
a model that cannot observe it. On the 200k-user benchmark world: the model 0.788, with every user
latent but the stage 0.823, with the stage too 0.840, the oracle 0.849. Only a generated world's
truth makes this possible; imported logs have none.

The gap is in what the brand can see, not in the model. On a 12k-user world (model 0.8006, + true stage
0.8240, + true category taste 0.8210, oracle 0.8610), the observable traces of both latents were tried
as features: the session's favourites so far, its views of items the user had bought before and whether
it opened on one (a replenishment visit is always in the purchase stage) added +0.0009 at most; the
user's whole category view profile folded onto the world's own category centroids (a MAP taste vector:
an upper bound for any factorisation of views, correlating 0.37 with the true category taste) added
+0.0020. A session's stage shows mostly in what it does after the impression, and a few dozen views
say little about a taste that the user's drifting interest only loosely follows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.repo import feature_store
from siyu.metrics import auc
from siyu.settings import Settings
from siyu.world.sequential import STAGE_LOGIT, STAGES
from siyu.world.simulate import purchase_logit
from training.conversion import fit, oracle_probabilities
from training.dataset import MODEL_FEATURES, build_training_set

# Each variant adds its latents to the previous one's: (name, latent columns added).
VARIANTS = (
    ("true_category_taste", ("true_category_taste",)),
    ("true_item_taste", ("true_item_taste",)),
    ("true_boost_and_price_sensitivity", ("true_boost", "true_price_sensitivity")),
    ("true_stage", ("true_stage_logit",)),
)


def latent_ceiling(settings: Settings, max_rows: int = 400_000) -> dict[str, float]:
    """AUC on the time-based holdout of the model, of the model plus each cumulative set of latents, and of
    the oracle; raises ValueError when the data directory holds no world truth."""
    if not (settings.truth_dir / "users.parquet").exists():
        raise ValueError(f"no world truth under {settings.truth_dir}: the ceiling needs a generated world")
    data = build_training_set(settings, feature_store(settings), max_rows=max_rows, seed=settings.seed)
    frame = data.frame.join(world_latents(settings, data.frame))
    train, holdout = frame[frame["event_timestamp"] < data.cutoff], frame[frame["event_timestamp"] >= data.cutoff]
    labels = holdout["label"].to_numpy()
    features = tuple(MODEL_FEATURES)
    out = {"auc": _holdout_auc(train, holdout, features, settings.seed)}
    for name, latents in VARIANTS:
        features = (*features, *latents)
        out[f"auc_with_{name}"] = _holdout_auc(train, holdout, features, settings.seed)
    oracle = oracle_probabilities(holdout, pd.read_parquet(settings.truth_impressions_path))
    if oracle is not None:
        out["oracle_auc"] = auc(labels, oracle)
    return out


def world_latents(settings: Settings, impressions: pd.DataFrame) -> pd.DataFrame:
    """The world's latent terms of each impression's purchase logit (same index; NaN where the truth has no row).

    `true_boost` is what is left of the true logit once every other term is taken out: the complement and
    due-repurchase boost (`siyu.world.sequential.ChoiceState.boost`).
    """
    truth = settings.truth_dir
    shown = pd.read_parquet(settings.truth_impressions_path).drop_duplicates(["session_id", "item_id"])
    rows = impressions[["session_id", "item_id"]].merge(shown, on=["session_id", "item_id"], how="left")
    users = pd.read_parquet(truth / "users.parquet").set_index("user_id")
    items = pd.read_parquet(settings.truth_items_path).set_index("item_id")
    taste_columns = [c for c in users.columns if c.startswith("taste_")]
    vec_columns = [f"vec_{c.removeprefix('taste_')}" for c in taste_columns]
    user = users.reindex(rows["user_id"])
    taste = user[taste_columns].to_numpy()
    item = items.reindex(rows["item_id"])
    vec = item[vec_columns].to_numpy()
    category_vec = items[vec_columns].groupby(items["category"]).mean().reindex(item["category"]).to_numpy()
    beta = user["price_sensitivity"].to_numpy()
    stage = pd.Categorical(rows["intent_stage"], categories=STAGES).codes
    p = rows["true_purchase_prob"].to_numpy(dtype=float)
    known = purchase_logit(
        item["appeal"].to_numpy(),
        item["level_logit"].to_numpy(),
        taste,
        vec,
        beta,
        rows["price"].to_numpy() / item["list_price"].to_numpy(),
        rows["on_promotion"].to_numpy(dtype=float),
        (rows["channel"] == "store").to_numpy(),
        stage,
        boost=0.0,
    )
    return pd.DataFrame(
        {
            "true_category_taste": np.einsum("ij,ij->i", taste, category_vec),
            "true_item_taste": np.einsum("ij,ij->i", taste, vec - category_vec),
            "true_price_sensitivity": beta,
            "true_boost": np.log(p / (1 - p)) - known,
            "true_stage_logit": STAGE_LOGIT[stage],
        },
        index=impressions.index,
    )


def _holdout_auc(train: pd.DataFrame, holdout: pd.DataFrame, features: tuple[str, ...], seed: int) -> float:
    booster = fit(train, seed=seed, features=features)
    return auc(holdout["label"].to_numpy(), booster.predict(holdout[list(features)]))
