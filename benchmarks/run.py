"""Run every benchmark area and write reports/<area>.json and reports/<area>.md."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from benchmarks import data, models, serving
from benchmarks.report import write_report
from tests.conftest import SHARED_DATA

console = Console(stderr=True)


def main(quick: Annotated[bool, typer.Option(help="small sizes: a few minutes in all")] = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with console.status("data: generator, importers, identity"):
            figures, notes = data.run(quick, SHARED_DATA)
        console.print(f"wrote {write_report('data', figures, notes)}")
        with console.status("conversion: generate, features, train"):
            settings, figures, notes = models.prepare(quick, root)
        console.print(f"wrote {write_report('conversion', figures, notes)}")
        with console.status("serving: /recommend latency"):
            figures, notes = serving.run(settings, quick, root)
        console.print(f"wrote {write_report('serving', figures, notes)}")


if __name__ == "__main__":
    typer.run(main)
