"""Decision-path model vs every baseline (and the oracle on generated data), per dataset, leave-last-out.

Figures are keyed by dataset then model (`ndcg@10`, `hr@10`, `mrr`, `train_seconds`,
`infer_ms_per_user`), with the seen-kept view and the headline ratios beside them; every number of
a dataset comes from the same split in the same run.
"""

from __future__ import annotations

from pathlib import Path

from siyu.settings import Settings, settings_under
from siyu.world.entities import WorldConfig
from siyu.world.generator import generate_world
from training.sequence.artifacts import compare_artifacts, request_tokens
from training.sequence.ceiling import observable_ceiling
from training.sequence.comparison import REPORTED, compare
from training.sequence.data import SequenceData, Split, leave_last_out
from training.sequence.recommender import SASRecRecommender
from training.sequence.retrieval import candidate_recall
from training.sequence.sources import from_online_retail, from_taobao, own_events, read_dataset
from training.sequence.world_truth import oracle_for

FULL_BUDGET_MINUTES = 20.0
QUICK_BUDGET_MINUTES = 1.0
ARTIFACT_REQUESTS = 500  # test users timed one request at a time per inference artifact


def world_for(quick: bool) -> WorldConfig:
    return (
        WorldConfig(users=3_000, items=300, days=30, seed=7)
        if quick
        else WorldConfig(users=20_000, items=2_000, days=60, seed=7)
    )


Datasets = dict[str, tuple[SequenceData, Settings | None]]


def _datasets(quick: bool, root: Path, shared: Path, extra: list[Path]) -> Datasets:
    """Each dataset's sequences, and for the generated world the settings its truth is read through."""
    world = world_for(quick)
    settings = settings_under(root / "sequence-world")
    generate_world(world, settings, progress=False)
    out: Datasets = {"synthetic": (own_events(settings), settings)}
    out["online_retail"] = (from_online_retail(shared / "online_retail" / "online-retail.csv.gz"), None)
    out["taobao"] = (from_taobao(shared / "taobao" / "UserBehavior_head.csv"), None)
    for path in extra:
        out[path.stem] = (read_dataset(path), None)
    return out


def run(quick: bool, root: Path, shared: Path, extra: list[Path], announce=print) -> tuple[dict, list[str]]:
    budget = (QUICK_BUDGET_MINUTES if quick else FULL_BUDGET_MINUTES) * 60
    figures: dict[str, object] = {}
    notes = [
        "leave-last-out; NDCG@10 / HR@10 / MRR over all items; seen items excluded as in SASRec/BERT4Rec/gSASRec,"
        " so only questions whose target is new to the user count (the seen-kept tables count every question)",
        f"model budget {budget / 60:g} min wall clock on this machine's cores; baselines tuned on the validation step",
    ]
    for name, (data, truth) in _datasets(quick, root, shared, extra).items():
        announce(f"sequence: {name}")
        split = leave_last_out(data)
        oracle = oracle_for(truth, data) if truth is not None else None
        result = compare(split, budget, oracle=oracle, announce=announce)
        figures[name] = {
            m: {k: row[k] for k in (*REPORTED, "sequences_per_second") if k in row}
            for m, row in result.seen_excluded.items()
        }
        figures[f"{name} (seen kept)"] = {
            m: {k: row[k] for k in ("ndcg@10", "ndcg@10_repeat", "ndcg@10_new", "repeat_share") if k in row}
            for m, row in result.seen_kept.items()
        }
        best, _ = result.best_baseline()
        ratios = result.ratios()
        figures |= {f"{name}_{k}": round(v, 4) for k, v in ratios.items()}
        figures[f"{name}_best_baseline"] = best
        figures[f"{name}_blend_weights"] = result.blend_weights
        figures[f"{name}_repeat_gate"] = {k: _round(v) for k, v in result.gate.items()}
        figures |= {f"{name}_{k}": round(v, 4) for k, v in result.intent.items()}
        model_row = result.seen_excluded["sasrec"]
        figures[f"{name}_peak_rss_mb"] = round(model_row.get("peak_rss_mb", float("nan")))
        figures[f"{name}_training_rss_growth_mb"] = round(model_row.get("rss_growth_mb", float("nan")))
        if result.model is not None:
            figures |= _serving_figures(name, split, result.model)
        if truth is not None and (ceiling := observable_ceiling(truth, split)):
            announce(f"{name}: oracle told less, rung by rung")
            figures[f"{name}_observable_ceiling"] = {rung: round(v, 4) for rung, v in ceiling.items()}
            ours = result.seen_excluded["sasrec"]["ndcg@10"]
            figures[f"{name}_vs_observable_ceiling"] = round(ours / ceiling["session_from_gaps"], 4)
            best = result.best_baseline()[1]
            figures[f"{name}_observable_ceiling_vs_best_baseline"] = round(ceiling["session_from_gaps"] / best, 4)
        notes.append(
            f"{name}: {data.n_users:,} users, {data.n_items:,} items, {data.n_steps:,} steps,"
            f" {len(split.test):,} test users" + "".join(f"; {m} skipped: {why}" for m, why in result.skipped.items())
        )
    return figures, notes


def _serving_figures(name: str, split: Split, model: SASRecRecommender) -> dict[str, object]:
    """Per inference artifact: ms per top-100 request on one thread; and /recommend's candidate recall."""
    users, cut = split.test.users[:ARTIFACT_REQUESTS], split.test.cut[:ARTIFACT_REQUESTS]
    network = model.model
    artifacts = compare_artifacts(network, request_tokens(network, split.data, users, cut), k=100)
    recall = candidate_recall(split, model)
    return {
        f"{name}_inference_top100": {k: {m: _round(v) for m, v in row.items()} for k, row in artifacts.items()},
        f"{name}_candidate_recall": {k: _round(v) for k, v in recall.items()},
    }


def _round(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value
