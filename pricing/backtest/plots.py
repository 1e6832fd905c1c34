"""Backtest pictures a pricing analyst looks at: price and stock paths of a few SKUs, and the spread of ratios."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pricing.backtest.play import BacktestResult

SHOWN = ("current", "best_static", "oracle", "learned", "markdown")


def plot_backtest(result: BacktestResult, out: Path, skus_shown: int = 4) -> list[Path]:
    """Write pricing_paths.png and pricing_ratios.png into `out`; returns their paths."""
    return [_paths(result, out / "pricing_paths.png", skus_shown), _ratios(result, out / "pricing_ratios.png")]


def _example_rows(result: BacktestResult, count: int) -> list[int]:
    """One SKU per stock kind first (the interesting ones), then the busiest of the rest."""
    scenario = result.scenario
    rows: list[int] = []
    busy = np.argsort(-scenario.truth.sum(axis=(1, 2)))
    for kind in ("perishable", "seasonal", "regular"):
        found = [i for i in busy if scenario.kind[i] == kind and i not in rows]
        rows += found[:1]
    rows += [int(i) for i in busy if i not in rows][: max(0, count - len(rows))]
    return rows[:count]


def _paths(result: BacktestResult, path: Path, count: int) -> Path:
    scenario = result.scenario
    rows = _example_rows(result, count)
    fig, axes = plt.subplots(2, len(rows), figsize=(4 * len(rows), 6), squeeze=False, sharex=True)
    periods = np.arange(scenario.horizon)
    for col, i in enumerate(rows):
        for policy in SHOWN:
            outcome = result.outcomes[policy]
            axes[0, col].step(periods, outcome.prices[0, i], where="post", label=policy)
            axes[1, col].step(periods, outcome.stock[0, i], where="post", label=policy)
        axes[0, col].set_title(f"{scenario.item_ids[i]} ({scenario.kind[i]})")
        axes[1, col].set_xlabel("day")
    axes[0, 0].set_ylabel("price (seed 0)")
    axes[1, 0].set_ylabel("stock on hand")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ratios(result: BacktestResult, path: Path) -> Path:
    oracle = result.outcomes["oracle"].value.mean(axis=0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    has_value = oracle > 0
    bins = np.linspace(0.5, 1.2, 36)
    for policy in ("current", "best_static", "learned", "markdown"):
        ratio = result.outcomes[policy].value.mean(axis=0)[has_value] / oracle[has_value]
        left.hist(np.clip(ratio, bins[0], bins[-1]), bins=bins, histtype="step", label=policy)
    left.set_xlabel("per-SKU value / oracle value (mean over seeds)")
    left.set_ylabel("SKUs")
    left.legend(fontsize=8)
    per_seed = {
        p: result.outcomes[p].value.sum(axis=1) / result.outcomes["oracle"].value.sum(axis=1)
        for p in ("current", "best_static", "clairvoyant_static", "learned", "markdown")
    }
    right.boxplot(list(per_seed.values()), tick_labels=list(per_seed))
    right.axhline(1.0, color="grey", lw=0.8)
    right.set_ylabel("total value / oracle, one point per seed")
    right.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
