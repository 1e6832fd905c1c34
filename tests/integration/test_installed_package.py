"""The service runs from a non-editable install of the package (a wheel, as `pip install .` builds it): every
module it needs ships in the wheel, and nothing reads the source checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serving.local.launcher import REPO_ROOT, running_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PACKAGES = ("siyu", "features", "training", "serving", "pricing", "tiers")
LOADED_FROM = f"""
import sys
import serving.service, siyu.cli
for name, module in sorted(sys.modules.items()):
    if name.split(".")[0] in {PACKAGES!r} and getattr(module, "__file__", None):
        print(module.__file__)
"""


def _install_wheel(tmp_path: Path) -> Path:
    """Build the wheel from the checkout and install it (without dependencies: the test's environment has
    them) into a directory of its own; returns that directory."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO_ROOT)], check=True)
    (wheel,) = wheels.glob("siyu-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    return site


def test_the_service_runs_from_the_installed_wheel(trained_system, tmp_path: Path) -> None:
    settings, _ = trained_system
    site = _install_wheel(tmp_path)
    run_dir = tmp_path / "run"  # no sources here: imports can only come from the installed wheel
    run_dir.mkdir()
    env = {"PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", LOADED_FROM], cwd=run_dir, env={**os.environ, **env},
        capture_output=True, text=True, check=True)  # fmt: skip
    loaded = [Path(line) for line in where.stdout.splitlines()]
    # every module of ours the service imports comes from the wheel: one missing from it would load from the checkout
    assert len(loaded) > 50 and all(path.is_relative_to(site) for path in loaded), where.stdout

    with running_server(settings, run_dir / "server.log", extra_env=env, cwd=run_dir) as base:
        recommended = httpx.post(f"{base}/recommend", json={"user_id": "anyone", "k": 3}, timeout=30)
        docs = httpx.get(f"{base}/docs.json", timeout=30)

    assert recommended.status_code == 200, recommended.text
    assert len(recommended.json()["items"]) == 3 and recommended.json()["model_version"]
    assert "/rerank" in docs.json()["paths"]
