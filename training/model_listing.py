"""The registry as a table: each registered model's versions, their aliases, when and how well they trained."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from siyu.settings import Settings
from siyu.tracking import client

# The metrics each model is judged by, shown in the listing (others stay in MLflow).
HEADLINE = {
    "conversion": ("auc", "logloss", "ece", "oracle_auc"),
    "sequence": ("valid_ndcg10", "test_ndcg10", "test_hr10"),
    "demand": ("elasticity_global", "promo_effect", "skus"),
}


@dataclass
class VersionRow:
    model: str
    version: str
    aliases: list[str]
    created: str
    metrics: str


def model_rows(settings: Settings) -> list[VersionRow]:
    """One row per registered version, newest first within each model."""
    registry = client(settings)
    kinds = {
        settings.conversion_model_name: "conversion",
        settings.sequence_model_name: "sequence",
        settings.demand_model_name: "demand",
    }
    rows: list[VersionRow] = []
    for model in sorted(registry.search_registered_models(), key=lambda m: m.name):
        versions = registry.search_model_versions(f"name = '{model.name}'")
        # Version search leaves `aliases` empty on some stores; the registered model always carries them.
        aliases: dict[str, list[str]] = {}
        for alias, number in (registry.get_registered_model(model.name).aliases or {}).items():
            aliases.setdefault(str(number), []).append(alias)
        for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
            metrics = registry.get_run(version.run_id).data.metrics if version.run_id else {}
            shown = [k for k in HEADLINE.get(kinds.get(model.name, ""), ()) if k in metrics]
            rows.append(
                VersionRow(
                    model=model.name,
                    version=str(version.version),
                    aliases=sorted(aliases.get(str(version.version), [])),
                    created=datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M"),
                    metrics="  ".join(f"{k} {metrics[k]:.4f}" for k in shown),
                )
            )
    return rows
