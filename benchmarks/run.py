"""Run the benchmark areas and write reports/<area>.json and reports/<area>.md."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from benchmarks import data, models, pricing, sequence, serving
from benchmarks.report import REPORTS, write_report
from tests.conftest import SHARED_DATA

console = Console(stderr=True)
AREAS = ("data", "conversion", "serving", "pricing", "sequence")


def main(
    quick: Annotated[bool, typer.Option(help="small sizes: a few minutes in all")] = False,
    only: Annotated[list[str] | None, typer.Option(help=f"run only these areas ({', '.join(AREAS)})")] = None,
    dataset: Annotated[
        list[Path] | None, typer.Option(help="sequence area: also evaluate on this log (`user item` per line, ...)")
    ] = None,
) -> None:
    areas = set(only or AREAS)
    if unknown := areas - set(AREAS):
        raise typer.BadParameter(f"unknown area(s) {sorted(unknown)}; expected some of {AREAS}")
    with tempfile.TemporaryDirectory() as tmp:
        if "data" in areas:
            with console.status("data: generator, importers, identity"):
                figures, notes = data.run(quick, SHARED_DATA)
            console.print(f"wrote {write_report('data', figures, notes)}")
        if "conversion" in areas:
            with console.status("conversion: generate, features, train"):
                settings, figures, notes = models.prepare(models.world_for(quick), quick, Path(tmp) / "conversion")
            with console.status("conversion: with and without the decision-path features"):
                extra, extra_notes = models.path_feature_figures(settings, quick)
            figures, notes = figures | extra, notes + extra_notes
            with console.status("tiers: profiles, value tiers, lifecycle, churn"):
                tiers, tier_notes = models.tier_figures(settings)
            console.print(f"wrote {write_report('tiers', tiers, tier_notes)}")
            figures |= {k: tiers[k] for k in ("churn_auc", "churn_baseline_auc", "churn_oracle_auc") if k in tiers}
            with console.status("conversion: the Taobao sample against simple baselines"):
                extra, extra_notes = models.taobao_figures(SHARED_DATA, Path(tmp) / "taobao")
            figures, notes = figures | extra, notes + extra_notes
            with console.status("conversion: the ceiling with the world's latents"):
                extra, extra_notes = models.ceiling_figures(settings)
            figures, notes = figures | extra, notes + extra_notes
            with console.status("conversion: Optuna tuning"):
                extra, extra_notes = models.tuning_figures(settings, quick)
            figures, notes = figures | extra, notes + extra_notes
            console.print(f"wrote {write_report('conversion', figures, notes)}")
        if "serving" in areas:
            world = models.serving_world_for(quick)
            if "conversion" not in areas or world != models.world_for(quick):
                with console.status("serving: generate, features, train"):
                    settings, _, _ = models.prepare(world, quick, Path(tmp) / "serving")
            with console.status("serving: /recommend latency"):
                figures, notes = serving.run(settings, quick, Path(tmp))
            console.print(f"wrote {write_report('serving', figures, notes)}")
        if "pricing" in areas:
            with console.status("pricing: backtest, solver at scale, rules, /price latency"):
                REPORTS.mkdir(exist_ok=True)
                figures, notes = pricing.run(quick, Path(tmp), REPORTS)
            console.print(f"wrote {write_report('pricing', figures, notes)}")
        if "sequence" in areas:
            with console.status("sequence: decision-path model vs baselines per dataset") as status:
                figures, notes = sequence.run(quick, Path(tmp), SHARED_DATA, dataset or [], announce=status.update)
            console.print(f"wrote {write_report('sequence', figures, notes)}")


if __name__ == "__main__":
    typer.run(main)
