"""The compiled trees predict what LightGBM predicts; without a C compiler LightGBM's predictor serves."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from serving.recommend.compiled_trees import compiled_predictor


@pytest.fixture(scope="module")
def booster() -> lgb.Booster:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 6))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take their learned branch in both predictors
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2]) > 0).astype(int)
    data = lgb.Dataset(x, y)
    return lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1}, data, num_boost_round=40)


@pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("clang")), reason="needs a C compiler (gcc or clang)")
def test_the_compiled_trees_give_lightgbms_probabilities(booster: lgb.Booster, tmp_path: Path) -> None:
    predict, note = compiled_predictor(booster, tmp_path)
    rows = np.random.default_rng(4).normal(size=(500, 6))
    rows[::7, 3] = np.nan

    assert note is None
    assert list(tmp_path.glob("conversion-*.so")), "the library is cached for the next worker"
    np.testing.assert_allclose(predict(rows), booster.predict(rows), rtol=0, atol=1e-12)
    again, _ = compiled_predictor(booster, tmp_path)  # from the cache
    np.testing.assert_array_equal(again(rows), predict(rows))


def test_without_a_compiler_lightgbm_serves_and_says_why(
    booster: lgb.Booster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcc, no clang

    predict, note = compiled_predictor(booster, tmp_path)

    assert note is not None and "no C compiler" in note
    rows = np.zeros((3, 6))
    np.testing.assert_array_equal(predict(rows), booster.predict(rows))
