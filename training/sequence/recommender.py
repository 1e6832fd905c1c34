"""The decision-path model behind the sequence benchmark's recommender protocol: name, fit(split), score(...).

Also the purchase-intent read-out and a one-file save/load for serving. Scoring always runs on the last
max_len steps of each history, in length-sorted batches, without gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.sequence.data import SequenceData, Split
from training.sequence.inference import encode_histories, intent_probabilities, query_tokens, scores_at
from training.sequence.model import DecisionPathModel, SequenceModelConfig
from training.sequence.train import TrainResult, train

# Knobs added after models were first saved, at the value those models were trained with: a file that does not
# name one predates it, and the new default would build layers its weights do not have.
KNOBS_ADDED_OFF = {"session_bias": False, "item_bias": False}


@dataclass(frozen=True)
class EncodedPaths:
    """Histories read up to their newest step: all a request adds is its time (the gap token)."""

    hidden: np.ndarray  # (users, hidden) float32; zeros for a history with no steps
    intent: np.ndarray  # (users,) P(a purchase follows in the newest step's session); the base rate without steps
    has_history: np.ndarray  # (users,) bool

    def rows(self, index: np.ndarray) -> EncodedPaths:
        return EncodedPaths(self.hidden[index], self.intent[index], self.has_history[index])


class SASRecRecommender:
    """The decision-path model as a recommender: `fit(split)`, `score(data, users, cut)`, `intent(...)`.

    Scores are for the model's own item vocabulary. Inside a split the scored data always shares it. At serve
    time a catalogue that has grown since training is matched by item id: steps on items the model never saw
    are dropped from histories, and those items' columns are -inf (not scored, rather than ranked by a guess).
    A history with no steps gets the training popularity (log counts), and intent its training base rate.
    """

    scores_are_logits = True  # a blend turns them into log-probabilities by a softmax over the items

    def __init__(
        self,
        config: SequenceModelConfig | None = None,
        name: str = "sasrec",
        checkpoint_dir: Path | str | None = None,
        resume: bool = False,
        progress: bool = False,
        on_epoch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.config = config or SequenceModelConfig()
        self.on_epoch = on_epoch  # per-epoch (epoch, valid NDCG@10) hook, e.g. a tuner's pruning check
        self.name = name
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.progress = progress
        self.model: DecisionPathModel | None = None
        self.result: TrainResult | None = None
        self.item_vocab: np.ndarray | None = None
        self.channel_vocab: tuple[str, ...] = ()
        self.popularity: np.ndarray | None = None  # log(1 + training count) per item token: empty-history scores
        self.intent_base_rate = 0.0
        self.intent_trained = False  # the head learns only from logs with actions and a positive intent_weight
        self._item_vectors: tuple[DecisionPathModel, torch.Tensor] | None = None

    def fit(self, split: Split) -> None:
        self.result = train(split, self.config, self.checkpoint_dir, self.resume, self.progress, self.on_epoch)
        self.model = self.result.model
        self.item_vocab = split.data.item_vocab
        self.channel_vocab = split.data.channel_vocab
        counts = np.bincount(split.train.item, minlength=split.data.n_items + 1).astype(np.float32)
        self.popularity = np.log1p(counts)
        self.intent_base_rate = float(split.train.purchase_follows.mean()) if split.train.n_steps else 0.0
        self.intent_trained = split.train.has_actions and self.config.intent_weight > 0

    def score(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        """(len(users), data.n_items + 1) float32 next-item scores after each history; column 0 is -inf."""
        return self.read(data, users, cut)[0]

    def read(
        self, data: SequenceData, users: np.ndarray, cut: np.ndarray, now: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`score` and `intent` from one pass of the model: what serving asks for on every request.

        A model with `query_gap` conditions the scores on the request's time: the target's own time when the
        data holds it (evaluation), else `now` in epoch seconds (serving), else nothing.
        """
        users, cut = np.asarray(users, dtype=np.int64), np.asarray(cut, dtype=np.int64)
        data, cut, columns = self.in_model_vocab(data, users, cut)
        scores, intent = self.read_encoded(self.encode(data, users, cut), data, users, cut, now)
        if columns is None:
            return scores, intent
        out = np.full((users.size, columns.size), -np.inf, dtype=np.float32)
        known = columns > 0
        out[:, known] = scores[:, columns[known]]
        return out, intent

    def encode(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> EncodedPaths:
        """The time-independent half of `read` for histories already in the model's vocabulary (`in_model_vocab`)."""
        model = self._fitted()
        users, cut = np.asarray(users, dtype=np.int64), np.asarray(cut, dtype=np.int64)
        has_history = cut > 0
        hidden = np.zeros((users.size, model.config.hidden), dtype=np.float32)
        intent = np.full(users.size, self.intent_base_rate, dtype=np.float32)
        if has_history.any():
            hidden[has_history], read_intent = encode_histories(model, data, users[has_history], cut[has_history])
            if self.intent_trained:
                intent[has_history] = read_intent
        return EncodedPaths(hidden, intent, has_history)

    def read_encoded(
        self, encoded: EncodedPaths, data: SequenceData, users: np.ndarray, cut: np.ndarray, now: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`read` of encoded histories (the same users and cuts, in the model's vocabulary) at `now`."""
        model = self._fitted()
        scores = np.empty((len(users), model.n_items + 1), dtype=np.float32)
        scores[~encoded.has_history] = self.popularity
        if encoded.has_history.any():
            with_history = np.asarray(users)[encoded.has_history], np.asarray(cut)[encoded.has_history]
            query = query_tokens(data, *with_history, now)
            hidden = encoded.hidden[encoded.has_history]
            scores[encoded.has_history] = scores_at(model, hidden, query, self._vectors_of(model))
        scores[:, 0] = -np.inf
        return scores, encoded.intent

    def intent(self, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> np.ndarray:
        """(len(users),) probability that a purchase follows the newest history step within its session."""
        model = self._fitted()
        users, cut = np.asarray(users, dtype=np.int64), np.asarray(cut, dtype=np.int64)
        data, cut, _ = self.in_model_vocab(data, users, cut)
        out = np.full(users.size, self.intent_base_rate, dtype=np.float32)
        has_history = (cut > 0) & self.intent_trained
        if has_history.any():
            out[has_history] = intent_probabilities(model, data, users[has_history], cut[has_history])
        return out

    def save(self, path: Path | str) -> Path:
        """Write the fitted model, its config and vocabularies to one file (loads with weights_only=True)."""
        model = self._fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "name": self.name,
                "config": self.config.model_dump(),
                "n_items": model.n_items,
                "n_channels": model.n_channels,
                "model": model.state_dict(),
                "item_vocab": [v.item() if isinstance(v, np.generic) else v for v in self.item_vocab],
                "channel_vocab": list(self.channel_vocab),
                "popularity": torch.from_numpy(self.popularity),
                "intent_base_rate": self.intent_base_rate,
                "intent_trained": self.intent_trained,
            },
            path,
        )
        return path

    @classmethod
    def load(cls, path: Path | str) -> SASRecRecommender:
        state = torch.load(Path(path), weights_only=True)
        rec = cls(SequenceModelConfig(**{**KNOBS_ADDED_OFF, **state["config"]}), name=state["name"])
        weights = state["model"]
        rec.model = DecisionPathModel(rec.config, state["n_items"], state["n_channels"], weights.get("item_category"))
        rec.model.load_state_dict(weights)
        rec.model.eval()
        rec.item_vocab = np.asarray(state["item_vocab"], dtype=object)
        rec.channel_vocab = tuple(state["channel_vocab"])
        rec.popularity = state["popularity"].numpy()
        rec.intent_base_rate = state["intent_base_rate"]
        rec.intent_trained = state["intent_trained"]
        return rec

    def _vectors_of(self, model: DecisionPathModel) -> torch.Tensor:
        """The fitted model's item vectors, computed once: a fitted model's weights no longer change, and
        gathering every item's category vector again cost a serving request about a tenth of its time."""
        kept = self._item_vectors
        if kept is None or kept[0] is not model:
            with torch.inference_mode():
                self._item_vectors = kept = model, model.item_vectors()
        return kept[1]

    def _fitted(self) -> DecisionPathModel:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call fit() (or load()) before scoring")
        return self.model

    def in_model_vocab(
        self, data: SequenceData, users: np.ndarray, cut: np.ndarray
    ) -> tuple[SequenceData, np.ndarray, np.ndarray | None]:
        """`data` re-tokenised into the model's vocabularies, the cuts adjusted for dropped unknown-item steps,
        and (when the vocabularies differ) the model token of each of `data`'s item columns (0 = unknown).

        Serving re-tokenises a whole event log once per refresh this way, so each request's `score` and
        `intent` take the shared-vocabulary fast path.
        """
        return data.in_vocab(self.item_vocab, self.channel_vocab, users, cut)
