"""The built wheel ships every module of every package, so a non-editable install runs every command."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("siyu", "features", "training", "serving", "pricing")


@pytest.mark.slow
def test_wheel_ships_every_module(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        # Build from a copy of the tree state, not the editable install's metadata.
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("siyu-*.whl")
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    expected = {
        path.relative_to(REPO).as_posix()
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert expected - shipped == set(), f"modules missing from the wheel: {sorted(expected - shipped)}"
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in shipped)
    entry_points = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("entry_points.txt"))
    assert "siyu = siyu.cli:app" in zipfile.ZipFile(wheel).read(entry_points).decode()
