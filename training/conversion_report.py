"""The conversion model's evaluation as a person reads it: overall, by user history, calibration and lift.

One function computes every figure from (labels, predictions, history depth, and the oracle's
probabilities when the world keeps them), so the `siyu evaluate conversion` command, its Markdown and
the benchmark report all say the same thing. History groups follow the issue's cut: users with no
earlier session, 1-4 earlier sessions, and 5 or more, since a model that only shines on regulars
would hide a cold-start weakness in the overall AUC.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np

from siyu.metrics import auc, expected_calibration_error, logloss

HISTORY_GROUPS: dict[str, tuple[float, float]] = {"none": (0, 0), "1-4": (1, 4), "5+": (5, np.inf)}
DECILES = 10
RELIABILITY_BINS = 15


def scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """AUC, log loss, ECE (15 bins), Brier score, rows and positive rate of one set of predictions."""
    labels, probs = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
    if labels.size == 0:
        return {"rows": 0.0}
    return {
        "auc": auc(labels, probs),
        "logloss": logloss(labels, probs),
        "ece": expected_calibration_error(labels, probs, RELIABILITY_BINS),
        "brier": float(np.mean((probs - labels) ** 2)),
        "rows": float(labels.size),
        "positive_rate": float(labels.mean()),
    }


def lift_by_decile(labels: np.ndarray, probs: np.ndarray) -> list[dict[str, float]]:
    """Deciles of predicted probability, highest first: each one's observed conversion and its lift over
    the overall rate (what a campaign reaching only the top decile gains)."""
    labels, probs = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
    order = np.argsort(-probs, kind="stable")
    base = labels.mean() if labels.size else float("nan")
    out = []
    for decile, rows in enumerate(np.array_split(order, DECILES), start=1):
        rate = float(labels[rows].mean()) if rows.size else float("nan")
        out.append(
            {
                "decile": float(decile),
                "rows": float(rows.size),
                "predicted": float(probs[rows].mean()) if rows.size else float("nan"),
                "observed": rate,
                "lift": rate / base if base > 0 else float("nan"),
            }
        )
    return out


def evaluation(
    labels: np.ndarray, probs: np.ndarray, sessions_before: np.ndarray, oracle: np.ndarray | None = None
) -> dict[str, object]:
    """Every figure of the report: overall, `by_history` (each with the oracle's AUC on its rows when known)
    and the lift table."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    depth = np.asarray(sessions_before, dtype=float)
    report: dict[str, object] = dict(scores(labels, probs))
    if oracle is not None:
        report |= {f"oracle_{k}": v for k, v in scores(labels, oracle).items() if k in ("auc", "logloss", "ece")}
    by_history: dict[str, dict[str, float]] = {}
    for group, (low, high) in HISTORY_GROUPS.items():
        rows = (depth >= low) & (depth <= high)
        entry = scores(labels[rows], probs[rows])
        if oracle is not None and rows.any():
            entry |= {
                f"oracle_{k}": v for k, v in scores(labels[rows], oracle[rows]).items() if k in ("auc", "logloss")
            }
        by_history[group] = entry
    report["by_history"] = by_history
    report["lift"] = lift_by_decile(labels, probs)
    return report


def baseline_report(labels: np.ndarray, predictions: dict[str, np.ndarray]) -> dict[str, object]:
    """`baselines` (each one's AUC, log loss, ECE and Brier on the rows) and which is best by AUC."""
    baselines = {
        name: {k: v for k, v in scores(labels, probs).items() if k in ("auc", "logloss", "ece", "brier")}
        for name, probs in predictions.items()
    }
    best = max(baselines, key=lambda name: baselines[name]["auc"])
    return {"baselines": baselines, "best_baseline": best, "best_baseline_auc": baselines[best]["auc"]}


def plot_reliability(labels: np.ndarray, probs: np.ndarray, path: Path, oracle: np.ndarray | None = None) -> Path:
    """Observed conversion against predicted probability per equal-count bin, beside the diagonal."""
    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for name, values in (("model", probs), ("oracle", oracle)):
        if values is None:
            continue
        order = np.argsort(values, kind="stable")
        bins = [b for b in np.array_split(order, RELIABILITY_BINS) if b.size]
        predicted = [float(np.mean(values[b])) for b in bins]
        observed = [float(np.mean(labels[b])) for b in bins]
        ax.plot(predicted, observed, marker="o", label=name)
        top = max(top, *predicted, *observed)
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect calibration")
    ax.set(xlabel="predicted P(purchase)", ylabel="observed purchase rate", title="Reliability (equal-count bins)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_lift(lift: list[dict[str, float]], path: Path) -> Path:
    """Observed conversion per predicted-probability decile (1 = highest), as lift over the average."""
    fig, ax = plt.subplots(figsize=(6, 4))
    deciles = [int(row["decile"]) for row in lift]
    ax.bar(deciles, [row["lift"] for row in lift], color="#4c72b0")
    ax.axhline(1.0, color="grey", linestyle="--")
    ax.set(xlabel="decile of predicted probability (1 = highest)", ylabel="lift over average", title="Lift by decile")
    ax.set_xticks(deciles)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(report: dict[str, object], title: str, notes: list[str]) -> str:
    """The report as Markdown: headline table, history breakdown, lift table, and the two plots."""
    lines = [f"# {title}", "", *[f"- {n}" for n in notes], ""]
    head = (
        "auc",
        "best_baseline_auc",
        "oracle_auc",
        "logloss",
        "oracle_logloss",
        "ece",
        "brier",
        "rows",
        "positive_rate",
    )
    lines += ["| figure | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(report[k], count=k == 'rows')} |" for k in head if k in report]
    lines += ["", "## by user history (sessions before the impression)", ""]
    columns = ("rows", "auc", "oracle_auc", "logloss", "oracle_logloss", "ece", "positive_rate")
    lines += ["| history | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for group, entry in report["by_history"].items():  # type: ignore[union-attr]
        cells = (_fmt(entry.get(c, float("nan")), count=c == "rows") for c in columns)
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    if "baselines" in report:
        lines += ["", "## simple baselines on the same rows", "", "| baseline | auc | logloss | ece | brier |"]
        lines.append("|---|---|---|---|---|")
        lines += [
            f"| {name} | " + " | ".join(_fmt(entry[c]) for c in ("auc", "logloss", "ece", "brier")) + " |"
            for name, entry in report["baselines"].items()  # type: ignore[union-attr]
        ]
    lines += ["", "## lift by decile", "", "| decile | rows | predicted | observed | lift |", "|---|---|---|---|---|"]
    for row in report["lift"]:  # type: ignore[union-attr]
        lines.append(
            f"| {int(row['decile'])} | {int(row['rows']):,} | {row['predicted']:.4f} | {row['observed']:.4f}"
            f" | {row['lift']:.2f} |"
        )
    lines += ["", "![reliability](reliability.png)", "", "![lift](lift.png)", ""]
    return "\n".join(lines)


def _fmt(value: object, count: bool = False) -> str:
    if isinstance(value, float) and count:
        return f"{value:,.0f}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
