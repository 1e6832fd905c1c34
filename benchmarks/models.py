"""Conversion-model quality on a time-based holdout, next to the oracle (the world's true probabilities)."""

from __future__ import annotations

from pathlib import Path

from features import repo
from siyu.data.importing.api import import_file
from siyu.memory import peak_rss
from siyu.settings import Settings, settings_under
from siyu.world.entities import WorldConfig
from siyu.world.generator import generate_world
from tiers import clv_probabilistic
from tiers.build import build_tiers
from tiers.truth import churn_oracle_auc, lifecycle_agreement, true_lifecycle
from training.conversion import train_and_register
from training.conversion_ceiling import latent_ceiling
from training.conversion_evaluation import evaluate_conversion
from training.conversion_tuning import tune_conversion
from training.pipeline import build_features
from training.sequence.data import leave_last_out
from training.sequence.intent_uplift import intent_uplift
from training.sequence.model import SequenceModelConfig
from training.sequence.registry import read_sequences
from training.sequence.registry import train_and_register as train_sequence

TUNING_TRIALS = {True: 5, False: 30}
# Impressions in the path-feature experiment: reading the decision-path model at each one's moment costs
# ~6 ms of attention per impression on these 2-core machines, so 400k would take about 40 minutes.
PATH_FEATURE_ROWS = {True: 10_000, False: 100_000}  # quick / full: reading impressions' paths is attention
# The decision-path model's training budget in the path-feature experiment (it early-stops sooner on small worlds).
PATH_MODEL_BUDGET_SECONDS = {True: 60.0, False: 300.0}


def world_for(quick: bool) -> WorldConfig:
    """The conversion targets are stated for a world of at least 200k users x 5k items x 90 days: the full run
    is that world (8M events; generating it peaks at ~8 GB, the training set's point-in-time join at ~10 GB)."""
    return (
        WorldConfig(users=5_000, items=400, days=45, seed=3)
        if quick
        else WorldConfig(users=200_000, items=5_000, days=90, seed=3)
    )


def serving_world_for(quick: bool) -> WorldConfig:
    """The serving benchmark's world: request latency depends on one user's history and the catalogue, not on
    the number of users, so the full run keeps the 30k-user world its earlier reports were measured on."""
    return world_for(True) if quick else WorldConfig(users=30_000, items=1_500, days=75, seed=3)


def prepare(world: WorldConfig, quick: bool, root: Path) -> tuple[Settings, dict, list[str]]:
    """Generate `world` under `root`, featurise, materialise and train: the system both areas measure."""
    root.mkdir(parents=True, exist_ok=True)
    settings = settings_under(root, feast_project="siyubench")
    gen = generate_world(world, settings, progress=False)
    build_features(settings)
    repo.materialize(settings)
    with peak_rss() as memory:
        result = train_and_register(settings)
    evaluated = evaluate_conversion(settings, root / "conversion-evaluation", result.version).report
    # /recommend retrieves from users' paths with the registered decision-path model (the serving area).
    sequences, fingerprint = read_sequences(settings)
    config = SequenceModelConfig(budget_seconds=PATH_MODEL_BUDGET_SECONDS[quick])
    train_sequence(settings, leave_last_out(sequences), fingerprint, config)
    m = result.metrics
    figures = {
        "auc": m["auc"],
        "logloss": m["logloss"],
        "ece": m["ece"],
        "oracle_auc": m.get("oracle_auc"),
        "oracle_logloss": m.get("oracle_logloss"),
        "auc_vs_oracle": m["auc"] / m["oracle_auc"] if m.get("oracle_auc") else None,
        "rows": int(m["train_rows"] + m["holdout_rows"]),
        "holdout_rows": int(m["holdout_rows"]),
        "train_seconds": round(m["train_seconds"], 2),
        "peak_rss_mb": round(memory.peak_mb),
        "brier": evaluated["brier"],
        "by_history": {
            group: {k: entry[k] for k in ("auc", "oracle_auc", "logloss", "oracle_logloss", "rows") if k in entry}
            for group, entry in evaluated["by_history"].items()  # type: ignore[union-attr]
        },
        "top_decile_lift": evaluated["lift"][0]["lift"],  # type: ignore[index]
    }
    notes = [
        f"world: {world.users:,} users x {world.items:,} items x {world.days} days = {gen.events:,} events",
        "holdout: the last 20% of online impressions in time; oracle = true purchase probability x in-stock",
    ]
    return settings, figures, notes


def tier_figures(settings: Settings) -> tuple[dict, list[str]]:
    """`siyu tiers build` on the benchmark world: tier sizes and KPIs, churn AUC, lifecycle vs the truth."""
    result = build_tiers(settings, compare_probabilistic=True)
    kpis = result.kpis()
    figures: dict[str, object] = {
        "users": len(result.tiers),
        "dormant_after_days": result.thresholds.dormant_after_days,
        "lifecycle": {k: int(v) for k, v in result.lifecycle_sizes().items()},
        "value_tiers": {tier: {k: float(v) for k, v in row.items()} for tier, row in kpis.iterrows()},
    }
    if result.churn is not None:
        figures |= {
            "churn_auc": result.churn.test_auc,
            "churn_baseline_auc": result.churn.baseline_auc,
            "churn_rate": result.churn.churn_rate,
            "churn_test_users": result.churn.test_rows,
        }
        figures["churn_oracle_auc"] = churn_oracle_auc(settings, result.churn)
    if result.value is not None:
        figures["ltv"] = {"horizon_days": result.value.horizon_days, "test_users": result.value.test_users}
        figures["ltv"] |= result.value.scores  # type: ignore[operator]
    truth = true_lifecycle(settings, result.tiers.index, result.as_of)
    if truth is not None:
        figures["lifecycle_vs_truth"] = {"agreement": lifecycle_agreement(result.tiers["lifecycle"], truth)}
    if not result.transitions.empty:
        figures["transitions_30d"] = {
            tier: {k: int(v) for k, v in row.items()} for tier, row in result.transitions.iterrows()
        }
    notes = [
        f"tiers as of {result.as_of.date()} on the conversion world; churn = no purchase in {30} days, LightGBM"
        " fitted on the snapshot two horizons back and scored on the next (forward in time); baseline ="
        " days since the last purchase on the same users; oracle = the world's expected purchases in the window"
        " (true session rates x true purchase probability per session)",
        "lifetime value: expected spend over the same horizon; LightGBM (Poisson orders, Tweedie spend) fitted on"
        " the earlier snapshot, BG/NBD + Gamma-Gamma (pymc-marketing, MAP) on the purchases before the later one,"
        " and 'the last window repeats', all scored on the later snapshot's users against their realised spend",
    ]
    if not clv_probabilistic.available():
        notes.append(
            "BG/NBD + Gamma-Gamma not scored: pymc-marketing (the `clv` extra, which `make bench` installs) is not"
            " installed in this environment"
        )
    return figures, notes


def path_feature_figures(settings: Settings, quick: bool) -> tuple[dict, list[str]]:
    """Conversion AUC on the same holdout rows without and with the decision-path model's impression features."""
    figures = intent_uplift(settings, PATH_MODEL_BUDGET_SECONDS[quick], PATH_FEATURE_ROWS[quick], seed=settings.seed)
    base = figures["auc_without"]
    ratios = {f"auc_ratio_{k[4:]}": figures[k] / base for k in figures if k.startswith("auc_with_")}
    notes = [
        "path features: session_intent (P(a purchase follows in this session)) and path_affinity (log P(this item"
        " next)) from a decision-path model trained only on events before the holdout cutoff, read from the"
        f" user's steps before each impression; LightGBM refitted per variant on the same {PATH_FEATURE_ROWS[quick]:,}"
        " sampled impressions (fewer than the headline model's 400,000, so its AUCs differ from `auc`)",
    ]
    return {f"path_features_{k}": v for k, v in (figures | ratios).items()}, notes


def ceiling_figures(settings: Settings) -> tuple[dict, list[str]]:
    """The model refitted with the world's exact latents added: how much of the oracle's lead is reachable."""
    figures = {f"ceiling_{k}": v for k, v in latent_ceiling(settings).items()}
    notes = [
        "ceiling: the same LightGBM refitted on the same rows with the world's exact latents added cumulatively"
        " (category taste, item taste within it, complement/repurchase boost and price sensitivity, then the"
        " session's intent stage); the last variant before the stage bounds a model that cannot observe it",
    ]
    return figures, notes


def tuning_figures(settings: Settings, quick: bool) -> tuple[dict, list[str]]:
    """`siyu tune conversion` on the benchmark world: wall time of the trials, best trial's AUC, pruned count."""
    tuned = tune_conversion(settings, n_trials=TUNING_TRIALS[quick])
    figures = {
        "tune_seconds": round(tuned.tune_seconds, 1),
        "tune_trials": tuned.trials,
        "tune_pruned": tuned.pruned,
        "tune_best_validation_auc": tuned.best_auc,
        "tuned_holdout_auc": tuned.registration.metrics["auc"],
    }
    notes = [
        f"tuning: {tuned.trials} Optuna TPE trials with per-round pruning, each scored on the training window's"
        " latest 20%; tuned_holdout_auc = the best parameters retrained and scored on the same holdout as `auc`",
    ]
    return figures, notes


def taobao_figures(shared_data: Path, root: Path) -> tuple[dict, list[str]]:
    """The conversion model on the Taobao sample (import, features, train) against simple baselines on its rows."""
    settings = settings_under(root, feast_project="siyutaobao")
    path = shared_data / "taobao" / "UserBehavior_head.csv"
    import_file(path, "taobao", settings)
    build_features(settings)
    result = train_and_register(settings)
    report = evaluate_conversion(settings, root / "taobao-evaluation", result.version).report
    baselines = report["baselines"]
    figures = {
        "auc": report["auc"],
        "logloss": report["logloss"],
        "best_baseline": report["best_baseline"],
        "best_baseline_auc": report["best_baseline_auc"],
        "auc_vs_best_baseline": report["auc"] / report["best_baseline_auc"],  # type: ignore[operator]
        "baselines": {name: entry["auc"] for name, entry in baselines.items()},  # type: ignore[union-attr]
        "rows": int(report["rows"]),  # type: ignore[call-overload]
    }
    notes = [
        f"taobao: {path.name} imported with `siyu data import --format taobao`; holdout = the last 20% of its views"
        f" in time ({figures['rows']:,} rows); baselines fitted on the training rows: item conversion rate, user"
        " conversion rate, the user's history with the item (viewed/carted/favourited/bought before), and the"
        " three combined (the item's rate times the user's and the history's lifts)",
    ]
    return {"taobao": figures}, notes
