"""Write one benchmark area as machine-readable JSON plus a markdown table a person reads."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path

REPORTS = Path("reports")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_report(area: str, figures: dict[str, object], notes: list[str]) -> Path:
    """`figures` is flat (key -> number/text); `notes` say what data size each figure was measured on."""
    REPORTS.mkdir(exist_ok=True)
    meta = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform()}
    (REPORTS / f"{area}.json").write_text(json.dumps({**figures, "notes": notes, **meta}, indent=2, default=str))
    lines = [f"# {area}", "", *[f"- {n}" for n in notes], "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in figures.items()]
    lines += ["", f"_{meta['measured_at']} on {meta['machine']}_", ""]
    path = REPORTS / f"{area}.md"
    path.write_text("\n".join(lines))
    return path
