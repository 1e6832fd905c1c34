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


def _table(rows: dict[str, object]) -> list[str]:
    """A nested figure ({row: {column: value}}) as a markdown table."""
    columns: list[str] = []
    for row in rows.values():
        for key in row if isinstance(row, dict) else ["value"]:
            if key not in columns:
                columns.append(key)
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        values = row if isinstance(row, dict) else {"value": row}
        lines.append(f"| {name} | " + " | ".join(_fmt(values.get(c, "")) for c in columns) + " |")
    return lines


def write_report(area: str, figures: dict[str, object], notes: list[str]) -> Path:
    """`figures`: key -> number/text, or key -> {row: {column: value}} for a table; `notes`: data sizes."""
    REPORTS.mkdir(exist_ok=True)
    meta = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform()}
    (REPORTS / f"{area}.json").write_text(json.dumps({**figures, "notes": notes, **meta}, indent=2, default=str))
    flat = {k: v for k, v in figures.items() if not isinstance(v, dict)}
    lines = [f"# {area}", "", *[f"- {n}" for n in notes], "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in flat.items()]
    for name, table in figures.items():
        if isinstance(table, dict):
            lines += ["", f"## {name}", "", *_table(table)]
    lines += ["", f"_{meta['measured_at']} on {meta['machine']}_", ""]
    path = REPORTS / f"{area}.md"
    path.write_text("\n".join(lines))
    return path
