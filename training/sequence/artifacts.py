"""Which CPU inference artifact of the decision-path model answers a serving request fastest: measured.

A request is one user's recent steps; the answer is the top-k next items and the purchase intent. Three
forms of the same fitted model give it: the eager module rebuilt from its state_dict (what
`SASRecRecommender.load` and serving use), a TorchScript trace, and a `torch.export` program. Each is
timed on the same users, one request at a time on one thread (a serving worker's share of a core), and
checked against the eager answer, since a faster artifact that ranks differently is not the same model.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from training.sequence.batches import StepTokens, right_aligned
from training.sequence.data import SequenceData
from training.sequence.model import DecisionPathModel

Tokens = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Answer = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class ServingHead(nn.Module):
    """Tokens of one or more histories -> (top-k scores, top-k item tokens, purchase-intent probability)."""

    def __init__(self, model: DecisionPathModel, k: int) -> None:
        super().__init__()
        self.model = model
        self.k = min(k, model.n_items)
        padding = torch.zeros(model.n_items + 1)
        padding[0] = float("-inf")
        self.register_buffer("padding", padding)

    def forward(self, item: torch.Tensor, action: torch.Tensor, channel: torch.Tensor, gap: torch.Tensor) -> Answer:
        hidden = self.model.encode(item, action, channel, gap)[:, -1]
        scores, tokens = torch.topk(self.model.item_logits(hidden) + self.padding, self.k)
        return scores, tokens, torch.sigmoid(self.model.intent_logit(hidden))


def request_tokens(model: DecisionPathModel, data: SequenceData, users: np.ndarray, cut: np.ndarray) -> list[Tokens]:
    """One (1, length) token tuple per history: its last max_len steps, as a request would send them."""
    tokens = StepTokens.of(data)
    width = np.minimum(cut, model.config.max_len)
    start = data.offsets[users]
    return [
        tokens.gather(torch.from_numpy(right_aligned(start[j : j + 1], start[j : j + 1] + cut[j], int(width[j]), 0)))
        for j in range(users.size)
    ]


def compare_artifacts(
    model: DecisionPathModel, requests: list[Tokens], k: int = 100, warmup: int = 20
) -> dict[str, dict[str, float | str]]:
    """Per artifact: ms per request, ms to load, and the share of requests whose top-k equals the eager one."""
    if not requests:
        raise ValueError("compare_artifacts needs at least one request")
    head = ServingHead(model, k).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            reference = [head(*r)[1] for r in requests]
        # The longest history as the tracing example: a length-1 example would fix export's length dimension.
        example = max(requests, key=lambda r: r[0].shape[1])
        out: dict[str, dict[str, float | str]] = {}
        for name, build in (("state_dict", _eager), ("torchscript", _torchscript), ("torch_export", _exported)):
            try:
                run, load_ms = build(head, example)
                out[name] = {**_timed(run, requests, reference, warmup), "load_ms": load_ms}
            except Exception as exc:  # an artifact that cannot be built for this model is reported, not fatal
                out[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        return out
    finally:
        torch.set_num_threads(threads)


def _timed(
    run: Callable[[Tokens], Answer], requests: list[Tokens], reference: list[torch.Tensor], warmup: int
) -> dict[str, float]:
    with torch.inference_mode():
        for r in requests[:warmup]:
            run(r)
        started = time.perf_counter()
        answers = [run(r)[1] for r in requests]
        seconds = time.perf_counter() - started
    same = sum(bool(torch.equal(a, b)) for a, b in zip(answers, reference, strict=True))
    return {"ms_per_request": 1000 * seconds / len(requests), "same_top_k": same / len(requests)}


def _eager(head: ServingHead, example: Tokens) -> tuple[Callable[[Tokens], Answer], float]:
    buffer = io.BytesIO()
    torch.save(head.model.state_dict(), buffer)
    started = time.perf_counter()
    buffer.seek(0)
    weights = torch.load(buffer, weights_only=True)
    model = DecisionPathModel(
        head.model.config, head.model.n_items, head.model.n_channels, weights.get("item_category")
    )
    model.load_state_dict(weights)
    loaded = ServingHead(model, head.k).eval()
    return (lambda r: loaded(*r)), _ms_since(started)


def _torchscript(head: ServingHead, example: Tokens) -> tuple[Callable[[Tokens], Answer], float]:
    # TorchScript is deprecated upstream (every call warns); it is measured, not recommended.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, torch.jit.TracerWarning))
        with torch.inference_mode(False), torch.no_grad():
            traced = torch.jit.freeze(torch.jit.trace(head, example, check_trace=False))
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        started = time.perf_counter()
        buffer.seek(0)
        loaded = torch.jit.load(buffer)
        return (lambda r: loaded(*r)), _ms_since(started)


def _exported(head: ServingHead, example: Tokens) -> tuple[Callable[[Tokens], Answer], float]:
    length = torch.export.Dim("length", min=1, max=head.model.config.max_len)
    shapes = tuple({1: length} for _ in example)
    program = torch.export.export(head, example, dynamic_shapes=shapes)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    started = time.perf_counter()
    buffer.seek(0)
    loaded = torch.export.load(buffer).module()
    return (lambda r: loaded(*r)), _ms_since(started)


def _ms_since(started: float) -> float:
    return 1000 * (time.perf_counter() - started)
