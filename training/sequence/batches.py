"""Right-aligned, left-padded windows over the flat step arrays: batching is one fancy-index, never a Python loop.

A window is a row of flat step indices ending at a user's newest step (or a history's cut); cells before
the user's first step point at a sentinel step whose every token is 0, so gathering tokens through the
index matrix yields padded tensors directly. Batches group users of similar length (shuffled in chunks)
and are trimmed to their longest member, so short users never pay for L columns of padding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from training.sequence.data import SequenceData

# Users sorted by length within chunks of this many batches: little padding, still a random order of batches.
_SORT_CHUNK_BATCHES = 50


@dataclass
class StepTokens:
    """One SequenceData's token arrays as tensors with a trailing all-zero sentinel step (index `sentinel`)."""

    item: torch.Tensor  # (steps + 1,) int64
    action: torch.Tensor
    channel: torch.Tensor
    gap: torch.Tensor
    purchase_follows: torch.Tensor  # (steps + 1,) float32
    touch: torch.Tensor  # (steps + 1,) int64: 1 where the step may be a next-item target

    @property
    def sentinel(self) -> int:
        return self.item.shape[0] - 1

    @classmethod
    def of(cls, data: SequenceData) -> StepTokens:
        """Tensors of `data`'s tokens; logs without actions get the padding action everywhere."""

        def padded(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.from_numpy(np.append(values, 0)).to(dtype)

        action = data.action if data.has_actions else np.zeros_like(data.action)
        return cls(
            item=padded(data.item, torch.int64),
            action=padded(action, torch.int64),
            channel=padded(data.channel, torch.int64),
            gap=padded(data.gap, torch.int64),
            purchase_follows=padded(data.purchase_follows, torch.float32),
            touch=padded(data.is_touch, torch.int64),
        )

    def gather(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(item, action, channel, gap) tensors shaped like `index`."""
        return self.item[index], self.action[index], self.channel[index], self.gap[index]


def right_aligned(start: np.ndarray, end: np.ndarray, width: int, sentinel: int) -> np.ndarray:
    """(n, width) flat indices of the last `width` steps of [start[j], end[j]), left-padded with `sentinel`."""
    index = end[:, None] - width + np.arange(width)[None, :]
    return np.where(index >= start[:, None], index, sentinel)


@dataclass
class TrainBatch:
    """Inputs at every position, the next item as target, and the intent label; `real` marks scored positions."""

    item: torch.Tensor  # (batch, width) inputs
    action: torch.Tensor
    channel: torch.Tensor
    gap: torch.Tensor
    target: torch.Tensor  # (batch, width) next item token (0 where there is none, or the next step is a deepening)
    intent: torch.Tensor  # (batch, width) float: a purchase follows in this session
    real: torch.Tensor  # (batch, width) bool
    target_gap: torch.Tensor  # (batch, width) gap token of the target: the request's time since the input step

    @property
    def sequences(self) -> int:
        return self.item.shape[0]


class TrainWindows:
    """Every training user's last max_len + 1 steps, and up to `per_user - 1` earlier windows (every one when
    `per_user` is None), as an index matrix built once per fit.

    Position t's input is step t and its target is step t + 1, so a window of L + 1 steps gives L inputs.
    A history longer than L + 1 steps gives its earlier steps as further windows ending L steps apart (each
    target is scored once); with one window per user, as in SASRec, a long history's older steps are never
    learnt from (a quarter of UCI Online Retail's steps at L = 200). Users with a single step have no target
    and are left out.
    """

    def __init__(self, data: SequenceData, max_len: int, per_user: int | None = 1) -> None:
        self.tokens = StepTokens.of(data)
        lengths = data.lengths
        users = np.flatnonzero(lengths >= 2)
        targets = lengths[users] - 1
        count = -(-targets // max_len)  # windows of L targets each, newest first
        if per_user is not None:
            count = np.minimum(per_user, count)
        self.users = np.repeat(users, count)
        back = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)  # 0 = the newest window
        start, end = data.offsets[self.users], data.offsets[self.users + 1] - back * max_len
        self.index = right_aligned(start, end, max_len + 1, self.tokens.sentinel)
        self.lengths = np.minimum(end - start, max_len + 1)  # window steps, inputs = this - 1

    def __len__(self) -> int:
        return self.users.size

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[TrainBatch]:
        """One epoch of batches in random order, each holding users of similar length."""
        order = rng.permutation(len(self))
        chunk = batch_size * _SORT_CHUNK_BATCHES
        groups = []
        for lo in range(0, order.size, chunk):
            part = order[lo : lo + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            groups += [part[i : i + batch_size] for i in range(0, part.size, batch_size)]
        for g in rng.permutation(len(groups)):
            yield self._batch(groups[g])

    def _batch(self, rows: np.ndarray) -> TrainBatch:
        width = int(self.lengths[rows].max())
        index = torch.from_numpy(self.index[rows, -width:])
        item_all = self.tokens.item[index]
        inputs = index[:, :-1]
        item = item_all[:, :-1]
        return TrainBatch(
            item=item,
            action=self.tokens.action[inputs],
            channel=self.tokens.channel[inputs],
            gap=self.tokens.gap[inputs],
            target=item_all[:, 1:] * self.tokens.touch[index[:, 1:]],
            intent=self.tokens.purchase_follows[inputs],
            real=item != 0,
            target_gap=self.tokens.gap[index[:, 1:]],
        )


def history_batches(
    data: SequenceData, users: np.ndarray, cut: np.ndarray, max_len: int, batch_size: int, tokens: StepTokens
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """(rows into `users`, index window of the history's last max_len steps), grouped by length for speed.

    Every history must hold at least one step.
    """
    users, cut = np.asarray(users, dtype=np.int64), np.asarray(cut, dtype=np.int64)
    start = data.offsets[users]
    end = start + cut
    width_of = np.minimum(cut, max_len)
    order = np.argsort(width_of, kind="stable")
    for lo in range(0, order.size, batch_size):
        rows = order[lo : lo + batch_size]
        width = int(width_of[rows].max())
        yield rows, torch.from_numpy(right_aligned(start[rows], end[rows], width, tokens.sentinel))
