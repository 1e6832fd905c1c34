"""The decision-path model in MLflow: log a fitted model as a pyfunc, register it, load the champion for serving.

`SequencePyfunc` is pickled by reference to this module (`training.sequence.registry.SequencePyfunc`), so it
must stay importable here. The model itself travels as one file written by `SASRecRecommender.save`, so the
registry holds exactly what `SASRecRecommender.load` reads, and serving scores what evaluation scored.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

from siyu.settings import Settings
from siyu.tracking import (
    Registration,
    code_version,
    data_version,
    load_champion_pyfunc,
    register_first_aliases,
    use_registry,
    use_tracking,
)
from training.sequence.data import ACTIONS, SequenceData, Split, from_steps
from training.sequence.evaluation import GATE_QUESTIONS, evaluate
from training.sequence.model import SequenceModelConfig
from training.sequence.recommender import SASRecRecommender

ARTIFACT_KEY = "sequence_model"
EXPERIMENT = "sequence"
INPUT_COLUMNS = ("sequence_id", "item_id")  # required; action, channel, time and session_id are optional
# Everything the pyfunc imports at load time; the local build tag (+cpu) is dropped so pip can resolve torch.
SERVING_PACKAGES = ("mlflow", "torch", "numpy", "pandas", "scipy", "pydantic", "rich")

SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec("string", "sequence_id"),
            ColSpec("string", "item_id"),
            ColSpec("string", "action", required=False),
            ColSpec("string", "channel", required=False),
            ColSpec("long", "time", required=False),
            ColSpec("string", "session_id", required=False),
        ]
    ),
    outputs=Schema(
        [
            ColSpec("string", "sequence_id"),
            ColSpec(Array("string"), "items"),
            ColSpec("double", "intent"),
        ]
    ),
    params=ParamSchema([ParamSpec("k", "long", 10), ParamSpec("exclude_seen", "boolean", True)]),
)


class SequencePyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc face of a saved `SASRecRecommender`.

    predict() takes one row per step (sequence_id, item_id, and optionally action, channel, time in epoch
    seconds, session_id; rows in time order when time is absent) and returns one row per sequence: the top-k
    next item ids and the probability that a purchase follows the sequence's newest step in its session.
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.recommender = SASRecRecommender.load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        params = params or {}
        return recommend(
            self.recommender,
            model_input,
            k=int(params.get("k", 10)),
            exclude_seen=bool(params.get("exclude_seen", True)),
        )


def sequences_in_model_vocab(recommender: SASRecRecommender, rows: pd.DataFrame) -> SequenceData | None:
    """Input step rows as SequenceData sharing the model's item vocabulary (so scores cover every model item).

    Items the model never saw are dropped first (matched as strings, so `123` and "123" are one item); None
    when no row is left. Missing optional columns default to a view, an unknown channel, the row order as time
    and one session per sequence.
    """
    missing = [c for c in INPUT_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"sequence model input lacks column(s) {missing} (expected {', '.join(INPUT_COLUMNS)})")
    vocab = pd.Index([str(v) for v in recommender.item_vocab])
    item_token = vocab.get_indexer(rows["item_id"].astype(str)) + 1  # 0 = unknown to the model
    known = item_token > 0
    if not known.any():
        return None
    n = len(rows)
    sequence = rows["sequence_id"].astype(str).to_numpy(dtype=object)
    steps = pd.DataFrame(
        {
            "user_id": sequence,
            "item_id": item_token,  # tokens sort like the vocabulary, so from_steps' codes are token order
            "time": rows["time"].to_numpy(dtype=np.int64) if "time" in rows.columns else np.arange(n, dtype=np.int64),
            "action": rows["action"].fillna(ACTIONS[0]).to_numpy() if "action" in rows.columns else ACTIONS[0],
            "channel": rows["channel"].fillna("unknown").astype(str).to_numpy() if "channel" in rows else "unknown",
            "session_id": rows["session_id"].astype(str).to_numpy() if "session_id" in rows.columns else sequence,
        }
    )[known]
    data = from_steps(steps, has_actions=recommender.intent_trained)
    tokens = data.item_vocab.astype(np.int64)  # the distinct model tokens present, sorted
    return dataclasses.replace(data, item_vocab=recommender.item_vocab, item=tokens[data.item - 1].astype(np.int32))


def recommend(
    recommender: SASRecRecommender, rows: pd.DataFrame, k: int = 10, exclude_seen: bool = True
) -> pd.DataFrame:
    """One row per input sequence (in order of first appearance): top-k item ids (as strings) and intent.

    A sequence none of whose items the model knows gets the training popularity ranking and base intent rate,
    as an empty history does in `SASRecRecommender.score`.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    order = pd.unique(rows["sequence_id"].astype(str)) if "sequence_id" in rows.columns else []
    data = sequences_in_model_vocab(recommender, rows)
    names = np.asarray([str(v) for v in recommender.item_vocab], dtype=object)
    fallback_scores = np.asarray(recommender.popularity, dtype=np.float32).copy()
    fallback_scores[0] = -np.inf
    fallback = _top_k(fallback_scores[None, :], k, names)[0]
    answers: dict[str, tuple[list[str], float]] = {}
    if data is not None:
        users, cut = np.arange(data.n_users), data.lengths
        scores = recommender.score(data, users, cut)
        if exclude_seen:
            scores[np.repeat(users, cut), data.item] = -np.inf
        intent = recommender.intent(data, users, cut)
        for user, items, p in zip(data.user_ids, _top_k(scores, k, names), intent, strict=True):
            answers[str(user)] = (items, float(p))
    base = float(recommender.intent_base_rate)
    out = [(s, *answers.get(s, (fallback, base))) for s in order]
    return pd.DataFrame(out, columns=["sequence_id", "items", "intent"])


def _top_k(scores: np.ndarray, k: int, names: np.ndarray) -> list[list[str]]:
    """Item ids of each row's k best finite scores, best first (token t is names[t - 1])."""
    k = min(k, scores.shape[1] - 1)
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[names[t - 1] for t in row if np.isfinite(s[t]) and t > 0] for row, s in zip(best, scores, strict=True)]


@dataclass
class SequenceRegistration(Registration):
    """A logged and registered decision-path model: where it is and how it scored."""

    def summary(self) -> str:
        m = self.metrics
        return (
            f"valid NDCG@10 {m['valid_ndcg10']:.4f}; test NDCG@10 {m['test_ndcg10']:.4f}, HR@10 {m['test_hr10']:.4f},"
            f" MRR {m['test_mrr']:.4f}; version {self.version} {self.aliases} run {self.run_id}"
        )


def read_sequences(settings: Settings, dataset: Path | None = None, fmt: str = "auto") -> tuple[SequenceData, str]:
    """Sequences from `dataset` (or the data directory's event log) and the fingerprint of the files read.

    Raises SequenceDataError for input that cannot become sequences (missing, empty, malformed).
    """
    from training.sequence.sources import own_events, read_dataset

    if dataset is not None:
        return read_dataset(dataset, fmt), data_version([Path(dataset)])
    data = own_events(settings)  # may write the identity map first, so fingerprint afterwards
    inputs = sorted(settings.events_dir.glob("*.parquet"))
    inputs += [p for p in (settings.identity_map_path,) if p.exists()]
    return data, data_version(inputs)


def log_and_register(settings: Settings, recommender: SASRecRecommender, split: Split) -> SequenceRegistration:
    """Inside an active MLflow run: score on validation and test, log the pyfunc and metrics, register, alias.

    valid_ndcg10 uses the same protocol as the test metrics (full ranking, seen items and repeat targets
    excluded), so a champion gate compares like with like; early stopping's own figure is logged beside it.
    Both rank at most GATE_QUESTIONS questions, a fixed sample (`test_users` says how many counted).
    The first registered version becomes @champion; later ones @challenger only.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_and_register needs an active MLflow run")
    valid, test = (evaluate(recommender, split, which, max_users=GATE_QUESTIONS) for which in ("valid", "test"))
    metrics = {
        "valid_ndcg10": valid["ndcg@10"],
        "test_ndcg10": test["ndcg@10"],
        "test_hr10": test["hr@10"],
        "test_mrr": test["mrr"],
        "test_users": float(test["users"]),
    }
    if recommender.result is not None:
        metrics["early_stopping_ndcg10"] = recommender.result.best_ndcg10
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
    with tempfile.TemporaryDirectory() as tmp:
        path = recommender.save(Path(tmp) / "sasrec.pt")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SequencePyfunc(),
            artifacts={ARTIFACT_KEY: str(path)},
            registered_model_name=settings.sequence_model_name,
            signature=SIGNATURE,
            input_example=_input_example(recommender),
            pip_requirements=[f"{p}=={installed_version(p).split('+')[0]}" for p in SERVING_PACKAGES],
        )
    version = str(info.registered_model_version)
    aliases = register_first_aliases(settings, settings.sequence_model_name, version)
    return SequenceRegistration(run_id=run.info.run_id, version=version, aliases=aliases, metrics=metrics)


def _input_example(recommender: SASRecRecommender) -> pd.DataFrame:
    """Two steps of one sequence on the model's own items: what a caller sends, stored beside the model."""
    items = [str(v) for v in recommender.item_vocab[:2]]
    channel = recommender.channel_vocab[0] if recommender.channel_vocab else "unknown"
    return pd.DataFrame(
        {
            "sequence_id": ["s1"] * len(items),
            "item_id": items,
            "action": ["view", "add_to_cart"][: len(items)],
            "channel": [channel] * len(items),
            "time": np.arange(len(items), dtype=np.int64) * 60 + 1_700_000_000,
            "session_id": ["s1-1"] * len(items),
        }
    )


def train_and_register(
    settings: Settings,
    split: Split,
    fingerprint: str,
    config: SequenceModelConfig | None = None,
    progress: bool = False,
) -> SequenceRegistration:
    """Fit one config (default: SequenceModelConfig()) in its own MLflow run, then log and register it."""
    config = config or SequenceModelConfig()
    recommender = SASRecRecommender(config, progress=progress)
    use_tracking(settings, EXPERIMENT)
    with mlflow.start_run(run_name="sequence-sasrec"):
        mlflow.log_params({k: str(v) for k, v in config.model_dump().items()})
        mlflow.log_params({"data_version": fingerprint, "split": split.kind, "code_version": code_version()})
        recommender.fit(split)
        result = recommender.result
        mlflow.log_metrics({"train_seconds": result.train_seconds, "sequences_per_second": result.sequences_per_second})
        for record in result.history:
            mlflow.log_metric("valid_ndcg10_epoch", record.valid_ndcg10, step=record.epoch)
        return log_and_register(settings, recommender, split)


def load_version(settings: Settings, version: str) -> SASRecRecommender:
    """One registered version of the decision-path model (the champion gate and hot reload pick versions)."""
    use_registry(settings)
    wrapper = mlflow.pyfunc.load_model(f"models:/{settings.sequence_model_name}/{version}").unwrap_python_model()
    return wrapper.recommender


def load_champion(settings: Settings) -> SASRecRecommender:
    """The @champion decision-path model, loaded by version so the model and its registry entry agree."""
    wrapper, _ = load_champion_pyfunc(
        settings, settings.sequence_model_name, "`siyu train sequence` or `siyu tune sequence`"
    )
    return wrapper.recommender
