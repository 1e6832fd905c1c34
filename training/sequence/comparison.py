"""One comparison run: the decision-path model, every baseline and (on generated data) the oracle, on one split.

This is what `siyu evaluate sequence` prints and the `sequence` benchmark writes: the same split, the
same harness, the same run, so "1.10x the best baseline" compares like with like. It also checks that
order matters: the model refitted on training sequences shuffled within each user must score lower,
otherwise nothing it gains may be credited to reading the sequence in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from siyu.metrics import auc
from training.sequence.baselines import all_baselines
from training.sequence.blend import ScoreBlend
from training.sequence.data import SequenceData, Split
from training.sequence.evaluation import OracleRecommender, OracleSource, Recommender, evaluate
from training.sequence.gate import RepeatExploreGate
from training.sequence.model import SequenceModelConfig
from training.sequence.recommender import SASRecRecommender

MODEL_NAME = "sasrec"
SHUFFLED_NAME = "sasrec_shuffled_order"
ORACLE_NAME = "oracle"
BLEND_NAME = "sasrec_blend"
BASELINES_BLEND_NAME = "baselines_blend"  # the same blend without the model: what the model adds to the mix
GATED_NAME = "sasrec_gated"  # seen-kept only: with seen items excluded it ranks exactly as the model does
# Rows that are not one of the simple baselines: the headline "best baseline" is chosen without them.
NOT_BASELINES = (MODEL_NAME, SHUFFLED_NAME, ORACLE_NAME, BLEND_NAME, BASELINES_BLEND_NAME, GATED_NAME)
REPORTED = ("ndcg@10", "hr@10", "mrr", "train_seconds", "infer_ms_per_user", "users")


@dataclass
class ComparisonResult:
    """Per model: the seen-excluded (published protocol) row and the seen-kept row with its repeat/new split."""

    seen_excluded: dict[str, dict[str, float]] = field(default_factory=dict)
    seen_kept: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    intent: dict[str, float] = field(default_factory=dict)  # purchase-intent AUC, ours vs the last action
    blend_weights: dict[str, dict[str, float]] = field(default_factory=dict)  # "blend (protocol)" -> part -> weight
    gate: dict[str, float] = field(default_factory=dict)  # the repeat-or-explore gate's rate and coefficients
    model: SASRecRecommender | None = None

    def best_baseline(self) -> tuple[str, float]:
        """The strongest simple baseline by NDCG@10 (the oracle and our own rows excluded)."""
        rows = {k: v["ndcg@10"] for k, v in self.seen_excluded.items() if k not in NOT_BASELINES}
        name = max(rows, key=lambda k: rows[k])
        return name, rows[name]

    def ratios(self) -> dict[str, float]:
        """The headline figures: ours over the best baseline, over the oracle, and over our shuffled-order twin.

        `blend_vs_best_baseline` is the validation-tuned blend of ours with the baselines, over the best baseline;
        `blend_vs_baselines_blend` over the same blend without ours: what the model adds to what they know.
        """
        ours = self.seen_excluded[MODEL_NAME]["ndcg@10"]
        best = self.best_baseline()[1]
        out = {"vs_best_baseline": _ratio(ours, best)}
        if BLEND_NAME in self.seen_excluded:
            blend = self.seen_excluded[BLEND_NAME]["ndcg@10"]
            out["blend_vs_best_baseline"] = _ratio(blend, best)
            out["blend_vs_baselines_blend"] = _ratio(blend, self.seen_excluded[BASELINES_BLEND_NAME]["ndcg@10"])
        for name, key in ((ORACLE_NAME, "vs_oracle"), (SHUFFLED_NAME, "vs_shuffled_order")):
            if name in self.seen_excluded:
                out[key] = _ratio(ours, self.seen_excluded[name]["ndcg@10"])
        return out

    def as_json(self) -> dict[str, object]:
        return {
            "models": self.seen_excluded,
            "seen_kept": self.seen_kept,
            "skipped": self.skipped,
            "intent": self.intent,
            "blend_weights": self.blend_weights,
            "gate": self.gate,
            "best_baseline": self.best_baseline()[0],
            **self.ratios(),
        }


def _ratio(ours: float, theirs: float) -> float:
    """ours / theirs, NaN (not a crash) when the other model scored nothing at all."""
    return ours / theirs if theirs > 0 else float("nan")


def shuffled_within_users(data: SequenceData, seed: int = 0) -> SequenceData:
    """The same steps with each user's order randomly permuted (times and gaps travel with their step)."""
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(data.n_users), data.lengths)
    order = np.lexsort((rng.random(data.n_steps), owner))
    arrays = {k: getattr(data, k)[order] for k in ("item", "action", "channel", "gap", "time", "purchase_follows")}
    return SequenceData(
        user_ids=data.user_ids,
        item_vocab=data.item_vocab,
        channel_vocab=data.channel_vocab,
        offsets=data.offsets,
        has_actions=data.has_actions,
        touch=None if data.touch is None else data.touch[order],
        **arrays,
    )


def _row(recommender: Recommender, split: Split, train_seconds: float, exclude_seen: bool) -> dict[str, float]:
    metrics = evaluate(recommender, split, "test", exclude_seen=exclude_seen)
    row = {k: metrics[k] for k in metrics if exclude_seen is False or k in REPORTED}
    row["train_seconds"] = train_seconds
    return row


def compare(
    split: Split,
    budget_seconds: float,
    config: SequenceModelConfig | None = None,
    oracle: OracleSource | None = None,
    check_order: bool = True,
    progress: bool = False,
    announce: Callable[[str], None] = lambda _: None,
) -> ComparisonResult:
    """Fit and evaluate everything on `split`; the model trains within `budget_seconds` of wall clock."""
    config = (config or SequenceModelConfig()).model_copy(update={"budget_seconds": budget_seconds})
    result = ComparisonResult()
    contenders: list[tuple[Recommender, Split]] = [(b, split) for b in all_baselines()]
    if oracle is not None:
        contenders.insert(0, (OracleRecommender(oracle, name=ORACLE_NAME), split))
    result.model = SASRecRecommender(config, name=MODEL_NAME, progress=progress)
    contenders.append((result.model, split))
    if check_order:
        shuffled = Split(split.data, shuffled_within_users(split.train), split.valid, split.test, split.kind)
        contenders.append((SASRecRecommender(config, name=SHUFFLED_NAME, progress=progress), shuffled))
    for recommender, fit_on in contenders:
        announce(f"fitting {recommender.name}")
        started = time.perf_counter()
        recommender.fit(fit_on)
        seconds = time.perf_counter() - started
        if reason := getattr(recommender, "skipped", None):
            result.skipped[recommender.name] = reason
            continue
        result.seen_excluded[recommender.name] = _row(recommender, split, seconds, exclude_seen=True)
        result.seen_kept[recommender.name] = _row(recommender, split, seconds, exclude_seen=False)
    parts = [r for r, _ in contenders if r.name not in (SHUFFLED_NAME, ORACLE_NAME, *result.skipped)]
    announce(f"tuning {BLEND_NAME} and {BASELINES_BLEND_NAME} on validation")
    _blend(result, parts, split, BLEND_NAME)
    _blend(result, [p for p in parts if p is not result.model], split, BASELINES_BLEND_NAME)
    fitted = result.model.result
    if fitted is not None:
        announce(f"fitting {GATED_NAME}: repeat or explore, on validation")
        gated = RepeatExploreGate(result.model, name=GATED_NAME)
        started = time.perf_counter()
        gated.fit(split)
        seconds = result.seen_kept[MODEL_NAME]["train_seconds"] + time.perf_counter() - started
        result.seen_kept[GATED_NAME] = _row(gated, split, seconds, exclude_seen=False)
        result.gate = gated.params
        result.seen_excluded[MODEL_NAME] |= {
            "sequences_per_second": fitted.sequences_per_second,
            "peak_rss_mb": fitted.peak_rss_mb,
            "rss_growth_mb": fitted.rss_growth_mb,
            "best_epoch": fitted.best_epoch,
        }
        if split.data.has_actions:
            result.intent = intent_auc(result.model, split)
    return result


def _blend(result: ComparisonResult, parts: list[Recommender], split: Split, name: str) -> None:
    """The blend of the fitted parts, tuned once per protocol; its time is its tuning plus every part's fit."""
    parts_seconds = sum(result.seen_excluded[part.name]["train_seconds"] for part in parts)
    for protocol, exclude_seen, table in (
        ("seen excluded", True, result.seen_excluded),
        ("seen kept", False, result.seen_kept),
    ):
        mix = ScoreBlend(parts, name=name, exclude_seen=exclude_seen)
        started = time.perf_counter()
        mix.fit(split)
        table[name] = _row(mix, split, parts_seconds + time.perf_counter() - started, exclude_seen)
        result.blend_weights[f"{name} ({protocol})"] = mix.weights


def intent_auc(model: SASRecRecommender, split: Split) -> dict[str, float]:
    """AUC of "a purchase follows in this session" at each test history's newest step, ours vs its last action.

    The last action (view < favourite < cart < purchase) is the simple baseline: a cart add is the obvious
    sign that a purchase may follow.
    """
    questions = split.test
    newest = split.data.offsets[questions.users] + questions.cut - 1
    labels = split.data.purchase_follows[newest]
    return {
        "intent_auc": auc(labels, model.intent(split.data, questions.users, questions.cut)),
        "last_action_auc": auc(labels, split.data.action[newest].astype(float)),
        "positive_share": float(labels.mean()),
    }
