"""`siyu bento` builds a Bento pinned to today's champions, and `bentoml serve TAG` answers /recommend and /price
from the Bento's own copy of the sources (not the working tree), with exactly the pinned versions."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from serving.bento import build_bento
from serving.local.launcher import running_server
from siyu.tracking import CHAMPION, alias_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SKU = {"item_id": "i-new", "stock": 30, "cost": 20.0, "current_price": 49.9, "category_id": "c01"}


def test_a_built_bento_serves_recommend_and_price_with_the_pinned_versions(
    trained_system, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = trained_system
    home = tmp_path / "bentoml-home"
    monkeypatch.setenv("BENTOML_HOME", str(home))  # the build and the server share a store of their own

    built = build_bento(settings)

    assert built.pinned[settings.conversion_model_name] == alias_version(
        settings, settings.conversion_model_name, CHAMPION
    )
    assert settings.demand_model_name in built.pinned and settings.sequence_model_name in built.pinned
    assert (home / "bentos" / built.tag.replace(":", "/") / "src" / "serving" / "pinned_versions.json").exists()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with running_server(
        settings, run_dir / "bento.log", target=built.tag, extra_env={"BENTOML_HOME": str(home)}
    ) as base:
        recommended = httpx.post(f"{base}/recommend", json={"user_id": "anyone", "k": 3}, timeout=30)
        priced = httpx.post(
            f"{base}/price",
            json={"skus": [SKU], "horizon": 7},
            headers={"X-API-Key": settings.api_key},
            timeout=60,
        )

    assert recommended.status_code == 200, recommended.text
    assert recommended.json()["model_version"] == built.pinned[settings.conversion_model_name]
    assert priced.status_code == 200, priced.text
    assert priced.json()["demand_model_version"] == built.pinned[settings.demand_model_name]
