"""Next-item and intent losses, computed only at real (non-padding) positions.

Three next-item losses, because which one wins depends on the catalogue size and the CPU budget:
- `softmax`: cross-entropy over every item; exact, and cheap while the catalogue is a few thousand items.
- `sampled`: softmax over the target plus negatives drawn by popularity, each logit corrected by
  -log(expected count) (the logQ correction of Bengio & Senecal / Yi et al. 2019), so the estimate is not
  biased toward popular items; accidental hits (a negative equal to the target) are masked out.
- `gbce`: gSASRec's generalised BCE (Petrov & Macdonald 2023): uniform negatives and the positive's
  probability raised to beta, which undoes the overconfidence negative sampling causes in plain BCE.
Negatives are shared by the whole batch (one (positions, hidden) x (hidden, negatives) product) rather than
drawn per position as in the papers: the same estimator in expectation at a fraction of the memory.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from training.sequence.model import SOFTMAX_MAX_ITEMS, SequenceModelConfig

# Logit cells (positions x items) above which softmax switches to the chunked form: 256 MB of float32.
_SOFTMAX_CELLS = 1 << 26


class NextItemLoss:
    """Callable (hidden at real positions (n, d), item embedding table, targets (n,)) -> mean loss."""

    def __init__(self, config: SequenceModelConfig, item_counts: torch.Tensor) -> None:
        """`item_counts` (items + 1,): training frequency per item token, the popularity that `sampled` draws from."""
        self.n_items = item_counts.shape[0] - 1
        self.kind = config.loss
        if self.kind == "auto":
            self.kind = "softmax" if self.n_items <= SOFTMAX_MAX_ITEMS else "sampled"
        self.n_negatives = config.n_negatives
        counts = item_counts.to(torch.float64).clone()
        counts[0] = 0.0
        self.popularity = (counts / counts.sum()).to(torch.float32)
        # log of each item's expected count among the negatives; floored so an unseen target stays finite.
        self.log_expected = torch.log(torch.clamp(self.popularity * self.n_negatives, min=1e-12))
        # gBCE starts every logit at the sampled-BCE optimum for a know-nothing model, sigmoid = 1 / (1 + k);
        # from zero, the k negatives' push-down would first collapse all item vectors onto one direction.
        self.gbce_offset = -float(np.log(self.n_negatives))
        alpha = min(1.0, self.n_negatives / max(self.n_items - 1, 1))
        self.beta = alpha * (config.gbce_t * (1.0 - 1.0 / alpha) + 1.0 / alpha)

    def __call__(self, hidden: torch.Tensor, item_table: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "softmax":
            table = item_table[1:]  # padding is neither a target nor a competitor
            rows = _SOFTMAX_CELLS // table.shape[0]
            if hidden.shape[0] <= rows:
                return F.cross_entropy(hidden @ table.T, target - 1)
            return _ChunkedSoftmaxCE.apply(hidden, table, target - 1, max(rows, 1))
        if self.kind == "sampled":
            return self._sampled(hidden, item_table, target)
        return self._gbce(hidden, item_table, target)

    def _sampled(self, hidden: torch.Tensor, item_table: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        negatives = torch.multinomial(self.popularity, self.n_negatives, replacement=True)
        positive = (hidden * item_table[target]).sum(-1) - self.log_expected[target]
        negative = hidden @ item_table[negatives].T - self.log_expected[negatives]
        negative = negative.masked_fill(negatives[None, :] == target[:, None], float("-inf"))
        logits = torch.cat([positive[:, None], negative], dim=1)
        return -F.log_softmax(logits, dim=1)[:, 0].mean()

    def _gbce(self, hidden: torch.Tensor, item_table: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        negatives = torch.randint(1, self.n_items + 1, (self.n_negatives,))
        positive = (hidden * item_table[target]).sum(-1) + self.gbce_offset
        negative = hidden @ item_table[negatives].T + self.gbce_offset
        keep = (negatives[None, :] != target[:, None]).to(hidden.dtype)
        # log(sigmoid(s)^beta) = beta * logsigmoid(s); averaged over the 1 + k labels as gSASRec does.
        per_position = -self.beta * F.logsigmoid(positive) - (keep * F.logsigmoid(-negative)).sum(1)
        return (per_position / (1 + self.n_negatives)).mean()


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Full-softmax cross-entropy whose (positions x items) logits never exist at once.

    Forward keeps only each row's log-sum-exp; backward recomputes the logits a chunk of rows at a time.
    One extra matmul buys memory bounded by the chunk, and above ~50k items it is also faster (measured),
    because the full matrix no longer streams through memory three times.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,
        table: torch.Tensor,
        target: torch.Tensor,
        rows: int,
    ) -> torch.Tensor:
        lse = torch.cat([torch.logsumexp(h @ table.T, dim=1) for h in hidden.split(rows)])
        ctx.save_for_backward(hidden, table, target, lse)
        ctx.rows = rows
        return (lse - (hidden * table[target]).sum(-1)).mean()

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        hidden, table, target, lse = ctx.saved_tensors
        scale = grad / hidden.shape[0]
        grad_hidden, grad_table = torch.empty_like(hidden), torch.zeros_like(table)
        for lo in range(0, hidden.shape[0], ctx.rows):
            h = hidden[lo : lo + ctx.rows]
            prob = (h @ table.T).sub_(lse[lo : lo + ctx.rows, None]).exp_()
            prob[torch.arange(h.shape[0]), target[lo : lo + ctx.rows]] -= 1.0
            prob.mul_(scale)
            grad_hidden[lo : lo + ctx.rows] = prob @ table
            grad_table.addmm_(prob.T, h)
        return grad_hidden, grad_table, None, None


def intent_loss(logit: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """BCE of the purchase-intent head at real positions (flattened logits and 0/1 labels)."""
    return F.binary_cross_entropy_with_logits(logit, label)
