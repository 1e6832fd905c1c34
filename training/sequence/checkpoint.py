"""Training checkpoints: everything needed to continue a fit after an interruption, written atomically.

One file holds the current model and optimiser (to continue) and the best model so far (to keep), plus
the epoch, early-stopping state, per-epoch history, config and vocabulary sizes. It is written to a
temporary name and renamed, so a crash mid-write leaves the previous checkpoint intact. Every value is
a tensor or plain Python data, so it loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from training.sequence.model import SequenceModelConfig

CHECKPOINT_NAME = "checkpoint.pt"
# Fields a resumed fit may change: they bound the run, they do not change what is being trained.
RESUMABLE_CHANGES = frozenset({"max_epochs", "patience", "budget_seconds", "threads"})


class CheckpointMismatch(ValueError):
    """A checkpoint that belongs to a different model or dataset than the fit asked to resume it."""


def checkpoint_path(directory: Path | str) -> Path:
    return Path(directory) / CHECKPOINT_NAME


def save_checkpoint(directory: Path | str, state: dict[str, Any]) -> Path:
    """Write `state` to directory/checkpoint.pt atomically; returns the path."""
    path = checkpoint_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    directory: Path | str, config: SequenceModelConfig, n_items: int, n_channels: int
) -> dict[str, Any] | None:
    """The saved state if one exists, after checking it was made by the same model on the same vocabularies."""
    path = checkpoint_path(directory)
    if not path.exists():
        return None
    state = torch.load(path, weights_only=True)
    if (state["n_items"], state["n_channels"]) != (n_items, n_channels):
        raise CheckpointMismatch(
            f"{path} was trained on {state['n_items']} items / {state['n_channels']} channels, this split has "
            f"{n_items} / {n_channels}; use a fresh checkpoint directory"
        )
    saved, wanted = state["config"], config.model_dump()
    changed = sorted(k for k in wanted if saved.get(k) != wanted[k] and k not in RESUMABLE_CHANGES)
    if changed:
        raise CheckpointMismatch(
            f"{path} was trained with different {', '.join(changed)} "
            f"({', '.join(f'{k}={saved.get(k)!r}' for k in changed)}); only {sorted(RESUMABLE_CHANGES)} may change"
        )
    return state
