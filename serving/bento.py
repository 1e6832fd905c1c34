"""`siyu bento`: build the service into a Bento that serves exactly the model versions of today's champions.

A Bento built straight from `bentoml build` follows @champion at start-up like `siyu serve`. This build
resolves each model's @champion to its version now and writes the versions into the Bento
(serving/pinned_versions.json), so the artifact deployed next week serves what was reviewed today,
whatever the aliases say by then. The build runs on a copy of the sources, so the working tree never
holds a pin file that `siyu serve` would pick up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from siyu.settings import Settings
from siyu.tracking import served_version

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("siyu", "features", "training", "tiers", "pricing", "serving")
PIN_FILE = Path("serving") / "pinned_versions.json"


class BentoBuildError(RuntimeError):
    """No champion to pin, or `bentoml build` failed (its output is in the message)."""


@dataclass(frozen=True)
class BuiltBento:
    tag: str  # name:version in the local Bento store (BENTOML_HOME)
    pinned: dict[str, str]  # registered model name -> version


def champion_pins(settings: Settings) -> dict[str, str]:
    """Each served model's version now: the conversion model is required, the others pinned when registered."""
    names = (settings.conversion_model_name, settings.sequence_model_name, settings.demand_model_name)
    pins = {name: version for name in names if (version := served_version(settings, name)) is not None}
    if settings.conversion_model_name not in pins:
        raise BentoBuildError(
            f"no @champion '{settings.conversion_model_name}' in {settings.mlflow_tracking_uri} to pin:"
            " train and promote one first (`siyu bootstrap` on a synthetic world)"
        )
    return pins


def build_bento(settings: Settings) -> BuiltBento:
    pins = champion_pins(settings)
    with tempfile.TemporaryDirectory(prefix="siyu-bento-") as tmp:
        context = Path(tmp)
        for package in PACKAGES:
            shutil.copytree(REPO_ROOT / package, context / package, ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO_ROOT / name, context / name)
        (context / PIN_FILE).write_text(json.dumps(pins, indent=2))
        bentoml = Path(sys.executable).with_name("bentoml")
        env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true"}
        done = subprocess.run(
            [str(bentoml), "build", "--output", "tag", str(context)], capture_output=True, text=True, env=env, cwd=tmp
        )
    tag = next((line.split("__tag__:", 1)[1].strip() for line in done.stdout.splitlines() if "__tag__:" in line), None)
    if done.returncode != 0 or tag is None:
        raise BentoBuildError(f"bentoml build failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return BuiltBento(tag, pins)


def pinned_versions(service_dir: Path) -> dict[str, str]:
    """The versions a Bento was built with (empty when the service runs from a source tree)."""
    path = service_dir / PIN_FILE.name
    return json.loads(path.read_text()) if path.exists() else {}
