"""Run provenance: a data fingerprint that follows content, and the code version every run logs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from siyu.tracking import code_version, data_version


def test_the_data_fingerprint_follows_content_not_file_times(tmp_path: Path) -> None:
    first = tmp_path / "events.parquet"
    first.write_bytes(b"the same bytes")
    before = data_version([first])
    os.utime(first, (1, 1))  # touched, not changed
    assert data_version([first]) == before
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    (copy / "events.parquet").write_bytes(b"the same bytes")
    assert data_version([copy / "events.parquet"]) == before
    first.write_bytes(b"other bytes")
    assert data_version([first]) != before


def test_the_code_version_is_this_checkouts_commit() -> None:
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    version = code_version()
    if head.returncode == 0:
        assert version.startswith(head.stdout.strip())
    else:  # an installed copy without git history names the package version
        assert version.startswith("siyu==") or version == "unknown"
