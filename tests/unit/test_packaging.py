"""The built wheel ships every module of every package, so a non-editable install runs every command."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("siyu", "features", "training", "serving", "pricing", "tiers")


@pytest.mark.slow
def test_wheel_ships_every_module(tmp_path: Path) -> None:
    # Build from a copy, so the build leaves nothing (build/, *.egg-info) in the working tree.
    source = tmp_path / "src"
    for package in PACKAGES:
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*command, "-w", str(wheels)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = wheels.glob("siyu-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {name for name in names if name.endswith(".py")}
    expected = {
        path.relative_to(REPO).as_posix()
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert expected - shipped == set(), f"modules missing from the wheel: {sorted(expected - shipped)}"
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in shipped)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "siyu = siyu.cli:app" in zipfile.ZipFile(wheel).read(entry_points).decode()
