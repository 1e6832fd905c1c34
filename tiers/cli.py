"""`siyu tiers build`: value tiers, lifecycle and churn risk as of a date, with the summary operations read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli_support import DataDir, console, fail, settings_for

app = typer.Typer(help="User tiers: value, lifecycle, churn risk and lifetime value.", no_args_is_help=True)


@app.command("build")
def build(
    as_of: Annotated[
        datetime | None,
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="date the tiers hold for (default: after the last event)"),
    ] = None,
    horizon: Annotated[
        int, typer.Option(min=1, max=365, help="churn and lifetime value: days of the outcome window")
    ] = 30,
    core_share: Annotated[
        float, typer.Option(min=0.01, max=0.99, help="share of this quarter's buyers that are core")
    ] = 0.2,
    gap_quantile: Annotated[
        float, typer.Option(min=0.5, max=0.999, help="return-gap quantile beyond which a user is dormant")
    ] = 0.9,
    data_dir: DataDir = None,
) -> None:
    """Profile every user as of a date, assign tiers, churn risk and lifetime value, write them, print the summary."""
    import pandas as pd

    from tiers.build import build_tiers
    from tiers.segments import TierConfig
    from tiers.truth import churn_oracle_auc, lifecycle_agreement, true_lifecycle

    settings = settings_for(data_dir)
    config = TierConfig(core_share=core_share, gap_quantile=gap_quantile)
    try:
        with console.status("profiling users and fitting churn"):
            result = build_tiers(settings, pd.Timestamp(as_of) if as_of else None, horizon, config)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    t = result.thresholds
    console.print(
        f"tiers as of {result.as_of.date()}: {len(result.tiers):,} users -> {result.path}\n"
        f"thresholds from the data: dormant after {t.dormant_after_days:.1f} days away (return-gap quantile"
        f" {gap_quantile}), new within {t.new_within_days:.1f} days of the first visit, core value score"
        f" >= {t.core_min_score:.3f}"
    )
    kpis = Table(title="value tiers")
    kpis.add_column("tier")
    for column in result.kpis().columns:
        kpis.add_column(column, justify="right")
    for tier, row in result.kpis().iterrows():
        kpis.add_row(str(tier), *(_cell(v) for v in row))
    console.print(kpis)
    console.print("lifecycle: " + ", ".join(f"{k} {v:,}" for k, v in result.lifecycle_sizes().items()))
    if not result.transitions.empty:
        moves = Table(title="value tier 30 days earlier (rows) -> now (columns)")
        moves.add_column("from")
        for column in result.transitions.columns:
            moves.add_column(str(column), justify="right")
        for tier, row in result.transitions.iterrows():
            moves.add_row(str(tier), *(f"{int(v):,}" for v in row))
        console.print(moves)
    if result.churn is not None:
        c = result.churn
        console.print(
            f"churn (no purchase in {c.horizon_days} days): forward-in-time AUC {c.test_auc:.4f} vs"
            f" {c.baseline_auc:.4f} for days-since-last-purchase, on {c.test_rows:,} users ({c.churn_rate:.1%} churned)"
        )
        oracle = churn_oracle_auc(settings, c)
        if oracle is not None:
            console.print(f"churn AUC of the world's oracle (its expected purchases) on the same users: {oracle:.4f}")
    else:
        console.print(result.churn_note)
    if result.value is not None:
        v = result.value
        ltv = Table(title=f"lifetime value: spend in the next {v.horizon_days} days, on {v.test_users:,} users")
        ltv.add_column("method (forward in time)")
        columns = ("spearman", "top_decile_share", "mae", "total_ratio")
        for column in columns:
            ltv.add_column(column, justify="right")
        for method, figures in v.scores.items():
            ltv.add_row(method, *(_cell(figures[c]) for c in columns))
        console.print(ltv)
    else:
        console.print(result.value_note)
    truth = true_lifecycle(settings, result.tiers.index, result.as_of)
    if truth is not None:
        agreement = lifecycle_agreement(result.tiers["lifecycle"], truth)
        console.print(
            "lifecycle vs the world's truth: accuracy {accuracy:.3f}; recall new {new_recall:.2f} old {old_recall:.2f}"
            " dormant {dormant_recall:.2f}; precision new {new_precision:.2f} old {old_precision:.2f}"
            " dormant {dormant_precision:.2f}".format(**agreement)
        )


def _cell(value: float) -> str:
    if value != value:  # NaN: nothing to measure (no buyers in the tier)
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"
