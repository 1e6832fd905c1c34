"""The demand model recovers elasticities it was simulated from, stays monotone, and its inputs are point-in-time."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pricing.demand.config import DemandConfig
from pricing.demand.evaluation import censored_log_likelihood, expected_sales, time_split
from pricing.demand.fit import fit_demand
from pricing.demand.likelihood import _loglik
from pricing.demand.model import DemandModel
from pricing.demand.real_data import real_elasticities
from pricing.demand.sales import build_daily_sales, daily_sales
from siyu.data import schema
from siyu.data.store import read_table
from siyu.settings import Settings
from tests.conftest import SHARED_DATA, require_shared_data

CATEGORY_SLOPES = {"c0": -1.2, "c1": -2.0, "c2": -2.8}
PROMO_EFFECT = 0.25
START = date(2026, 1, 5)  # a Monday


def simulate_panel(
    seed: int = 0, skus_per_category: int = 20, days: int = 120, sku_sd: float = 0.15, rising: str | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Daily units drawn from the model itself: Poisson demand, capped by stock sized for regular days.

    Stock covers 0.8-2.5x a regular day, so promotion days (deeper prices, more demand) sell out
    most often: exactly the days that carry the price signal. `rising` names a SKU whose true
    slope is positive, to check that the fitted curve still never rises with price.
    """
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    weekday_effect = np.array([0.0, 0.05, 0.0, 0.05, 0.1, 0.3, 0.35])
    dates = pd.date_range(START, periods=days, freq="D")
    for category, slope in CATEGORY_SLOPES.items():
        for j in range(skus_per_category):
            item = f"{category}-{j:02d}"
            b = slope + rng.normal(0, sku_sd)
            b = 1.0 if item == rising else b
            truth[item] = b
            a = rng.normal(np.log(2.5), 0.4)
            list_price = float(rng.uniform(20, 80))
            level = np.repeat(rng.choice([1.0, 0.9, 1.1, 0.85], size=days // 20 + 1), 20)[:days]
            promo = rng.random(days) < 0.15
            ratio = level * np.where(promo, 1 - rng.uniform(0.15, 0.35, days), 1.0)
            regular = np.exp(a + weekday_effect[dates.weekday] + b * np.log(level))
            lam = np.exp(a + weekday_effect[dates.weekday] + b * np.log(ratio) + PROMO_EFFECT * promo)
            demand = rng.poisson(lam)
            stock = np.round(regular * rng.uniform(0.8, 2.5, days)).astype(int) + 1
            units = np.minimum(demand, stock)
            rows.append(
                pd.DataFrame(
                    {
                        "item_id": item,
                        "category_id": category,
                        "date": dates.date,
                        "units": units,
                        "price": list_price * ratio,
                        "list_price": list_price,
                        "on_promotion": promo,
                        "stock": stock,
                        "censored": units >= stock,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True), pd.Series(truth)


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.Series]:
    return simulate_panel()


@pytest.fixture(scope="module")
def fitted(simulated: tuple[pd.DataFrame, pd.Series]) -> DemandModel:
    return fit_demand(simulated[0], DemandConfig(features=()))


# --------------------------------------------------------------------------------- the likelihood


def test_censored_likelihood_derivatives_match_finite_differences() -> None:
    eta = np.array([-2.0, 0.3, 1.5, 2.5, -6.0])
    y = np.array([1.0, 2.0, 5.0, 3.0, 4.0])
    censored = np.ones(5, dtype=bool)
    h = 1e-5
    ll, d1, d2 = _loglik(eta, y, censored)
    up, down = _loglik(eta + h, y, censored), _loglik(eta - h, y, censored)
    np.testing.assert_allclose(d1, (up[0] - down[0]) / (2 * h), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(d2, (up[1] - down[1]) / (2 * h), rtol=1e-4, atol=1e-7)
    # P(D >= y) straight from the definition
    from scipy import stats

    np.testing.assert_allclose(ll, stats.poisson.logsf(y - 1, np.exp(eta)), rtol=1e-9)


def test_expected_sales_is_the_mean_of_demand_capped_at_stock() -> None:
    rng = np.random.default_rng(3)
    lam, stock = np.array([0.5, 2.0, 6.0, 3.0]), np.array([1.0, 2.0, 4.0, np.nan])
    draws = np.minimum(rng.poisson(lam, size=(200_000, 4)), np.nan_to_num(stock, nan=np.inf))
    np.testing.assert_allclose(expected_sales(lam, stock), draws.mean(axis=0), rtol=0.01)
    assert censored_log_likelihood(np.array([2.0]), np.array([2.0]), np.array([True]))[0] < 0


# ------------------------------------------------------------------------------ recovery from truth


def test_recovers_category_elasticities_and_ignoring_censoring_biases_them(
    simulated: tuple[pd.DataFrame, pd.Series], fitted: DemandModel
) -> None:
    panel, truth = simulated
    assert 0.1 < panel["censored"].mean() < 0.5
    true_global = np.mean(list(CATEGORY_SLOPES.values()))
    for category, slope in CATEGORY_SLOPES.items():
        row = fitted.categories.loc[category]
        assert abs(row["b"] - slope) < max(0.3, 3 * row["b_se"]), (category, row["b"], slope)
    assert abs(fitted.b_global - true_global) < 0.3
    assert abs(fitted.promo - PROMO_EFFECT) < 0.15

    naive = fit_demand(panel, DemandConfig(features=(), censoring="ignore"))
    # Read as exact, sold-out promotion days look like small lifts: the promotion effect vanishes
    # and the slopes shrink towards zero, most in the most price-sensitive category.
    assert naive.promo < PROMO_EFFECT - 0.15
    slopes = pd.Series(CATEGORY_SLOPES)
    naive_error = (naive.categories["b"] - slopes).abs()
    censored_error = (fitted.categories["b"] - slopes).abs()
    assert naive_error.mean() > 0.2
    assert naive_error.mean() > 2 * censored_error.mean()
    assert naive.categories.loc["c2", "b"] > CATEGORY_SLOPES["c2"] + 0.4
    sku_error = (fitted.skus["b"] - truth.reindex(fitted.skus.index)).abs()
    naive_sku_error = (naive.skus["b"] - truth.reindex(naive.skus.index)).abs()
    assert sku_error.mean() < 0.5 * naive_sku_error.mean()


def test_pooling_beats_each_sku_alone(simulated: tuple[pd.DataFrame, pd.Series], fitted: DemandModel) -> None:
    panel, truth = simulated
    few_days = panel[pd.to_datetime(panel["date"]) < pd.Timestamp(START + timedelta(days=30))]
    pooled = fit_demand(few_days, DemandConfig(features=()))
    alone = fit_demand(few_days, DemandConfig(features=(), pooling=False))
    rmse = {
        name: float(np.sqrt(np.mean((model.skus["b"] - truth.reindex(model.skus.index)) ** 2)))
        for name, model in (("pooled", pooled), ("alone", alone))
    }
    assert rmse["pooled"] < 0.8 * rmse["alone"], rmse
    # The spread of the true SKU slopes (sd 0.15) is small next to a month of one SKU's data:
    # the estimated tau says so, and each SKU's interval still covers its truth most of the time.
    assert np.sqrt(fitted.hyper["tau2"]) < 0.5
    covered = np.abs(fitted.skus["b"] - truth.reindex(fitted.skus.index)) < 1.96 * fitted.skus["b_se"]
    assert covered.mean() > 0.85


# ------------------------------------------------------------------------------- behaviour of a fit


def test_expected_units_never_rise_with_price_for_any_sku() -> None:
    panel, _ = simulate_panel(seed=1, skus_per_category=6, days=60, rising="c1-03")
    model = fit_demand(panel, DemandConfig(features=()))
    assert (model.skus["b"] <= 0).all()
    assert model.skus.loc["c1-03", "b"] == pytest.approx(0.0, abs=1e-9)  # bound, not a rising curve
    items = model.skus.index.to_numpy()
    ladder = np.outer(model.reference_price(items), np.linspace(0.5, 1.5, 11))
    units = model.expected_units(items, ladder, date(2026, 3, 10), periods=7)
    assert units.shape == (len(items), 7, 11)
    assert np.all(np.diff(units, axis=2) <= 1e-12)
    assert np.all(np.isfinite(units)) and np.all(units > 0)


def test_expected_units_apply_weekday_and_hold_the_trend_after_a_week(fitted: DemandModel) -> None:
    items = fitted.skus.index[:3].to_numpy()
    prices = fitted.reference_price(items)[:, None]
    later = fitted.last_date + timedelta(days=1)
    horizon = fitted.config.trend_horizon_days
    weeks = fitted.expected_units(items, prices, later, periods=horizon + 14)[:, :, 0]
    np.testing.assert_allclose(weeks[:, horizon : horizon + 7], weeks[:, horizon + 7 :])  # held past the horizon
    days = pd.date_range(later, periods=horizon + 14)
    by_weekday = np.log(weeks[0, horizon:]) - np.log(weeks[0, horizon])
    expected = fitted.weekday[days.weekday[horizon:]] - fitted.weekday[days.weekday[horizon]]
    np.testing.assert_allclose(by_weekday, expected, atol=1e-12)
    assert fitted.weekday[6] > fitted.weekday[1]  # the simulation's Sunday peak


def test_unseen_sku_gets_its_category_prior_or_the_global_one(fitted: DemandModel) -> None:
    items = np.array(["c1-00", "brand-new", "brand-new-elsewhere"])
    categories = np.array(["c1", "c1", "c9"])
    assert list(fitted.coverage(items, categories)) == ["sku", "category", "global"]
    assert list(fitted.known(items)) == [True, False, False]
    estimate, se = fitted.elasticity(items, categories)
    assert estimate[1] == pytest.approx(fitted.categories.loc["c1", "b"])
    assert estimate[2] == pytest.approx(fitted.b_global)
    assert se[1] > fitted.categories.loc["c1", "b_se"]  # a new SKU is a new draw around its category
    assert se[2] > se[1]
    prices = np.array([[30.0, 40.0, 50.0]] * 3)
    units = fitted.expected_units(items, prices, fitted.last_date + timedelta(days=1), 2, categories)
    assert np.all(np.isfinite(units)) and np.all(np.diff(units, axis=2) <= 0)
    # Centred on the ladder's middle price, the new SKU sells what its category's typical SKU does there.
    new_day = units[1, 0, 1]
    first = fitted.expected_units(np.array(["x"]), np.array([[1.0]]), fitted.last_date + timedelta(days=1), 1, ["c1"])
    assert new_day == pytest.approx(first[0, 0, 0])
    assert np.isnan(fitted.reference_price(np.array(["brand-new"])))[0]


def test_save_and_load_predict_the_same(fitted: DemandModel, tmp_path: Path) -> None:
    loaded = DemandModel.load(fitted.save(tmp_path / "model"))
    items = np.array([*fitted.skus.index[:5], "unseen"])
    prices = np.array([[10.0, 20.0, 40.0]] * 6)
    start = fitted.last_date + timedelta(days=3)
    np.testing.assert_allclose(
        loaded.expected_units(items, prices, start, 5), fitted.expected_units(items, prices, start, 5)
    )
    np.testing.assert_allclose(loaded.elasticity(items)[1], fitted.elasticity(items)[1])
    assert not list(tmp_path.rglob("*.pkl"))


def test_rejects_bad_inputs(fitted: DemandModel) -> None:
    with pytest.raises(ValueError, match="rows"):
        fitted.expected_units(np.array(["c0-00"]), np.ones((2, 3)), START, 1)
    with pytest.raises(ValueError, match="positive"):
        fitted.expected_units(np.array(["c0-00"]), np.array([[0.0]]), START, 1)
    with pytest.raises(ValueError, match="price"):
        fit_demand(pd.DataFrame({"item_id": ["a"], "date": [START], "units": [1]}))


def test_time_split_keeps_the_last_fifth_of_days(simulated: tuple[pd.DataFrame, pd.Series]) -> None:
    train, holdout, cutoff = time_split(simulated[0])
    assert pd.to_datetime(train["date"]).max() < pd.Timestamp(cutoff) <= pd.to_datetime(holdout["date"]).min()
    assert holdout["date"].nunique() == 24


# ------------------------------------------------------------------------------------ the sales panel


def _tables(settings: Settings) -> dict[str, pd.DataFrame]:
    return {
        "events": read_table(settings.events_dir, schema.EVENT_SCHEMA),
        "items": read_table(settings.items_path, schema.ITEM_SCHEMA),
        "prices": read_table(settings.prices_path, schema.PRICE_SCHEMA),
        "inventory": read_table(settings.inventory_path, schema.INVENTORY_SCHEMA),
    }


def test_daily_sales_counts_units_and_flags_sold_out_days(small_world: Settings) -> None:
    panel = daily_sales(small_world)
    tables = _tables(small_world)
    assert len(panel) == len(tables["prices"])
    assert not panel.duplicated(["item_id", "date"]).any()
    events = tables["events"]
    end = pd.Timestamp(panel["date"].max() + timedelta(days=1), tz="UTC")  # a purchase after the book's last day
    purchases = events[(events["event_type"] == "purchase") & (events["event_time"] < end)]
    assert panel["units"].sum() == purchases["quantity"].sum()
    assert (panel.loc[panel["censored"], "units"] >= panel.loc[panel["censored"], "stock"]).all()
    assert (panel.loc[~panel["censored"], "units"] < panel.loc[~panel["censored"], "stock"]).all()
    assert panel["censored"].any()
    assert (panel["reference_price"] > 0).all()
    assert panel["buyer_frequency"].dropna().ge(1).all()


def test_daily_sales_features_are_point_in_time(small_world: Settings) -> None:
    """A day's features do not change when every later day is dropped from every table."""
    tables = _tables(small_world)
    full = build_daily_sales(**tables)
    cutoff = pd.Timestamp(sorted(full["date"].unique())[12])
    before = {
        "events": tables["events"][tables["events"]["event_time"] < cutoff.tz_localize("UTC")],
        "items": tables["items"],
        "prices": tables["prices"][pd.to_datetime(tables["prices"]["date"]) < cutoff],
        "inventory": tables["inventory"][pd.to_datetime(tables["inventory"]["date"]) < cutoff],
    }
    truncated = build_daily_sales(**before)
    kept = full[pd.to_datetime(full["date"]) < cutoff].reset_index(drop=True)
    assert len(truncated) == len(kept)
    pd.testing.assert_frame_equal(truncated, kept)


# --------------------------------------------------------------------------------------- real data


def test_real_orange_juice_elasticities_are_negative_with_finite_intervals() -> None:
    require_shared_data()
    table = real_elasticities()
    assert set(table["dataset"]) == {"dominicks_oj", "oj_weekly_4brand", "kaggle_retail_price"}
    oj = table[table["dataset"].isin(["dominicks_oj", "oj_weekly_4brand"])]
    assert len(oj) == 7
    assert np.isfinite(oj[["elasticity", "std_error", "ci_low", "ci_high"]].to_numpy()).all()
    assert (oj["ci_high"] < 0).all()
    assert (oj["ci_low"] < oj["elasticity"]).all()
    assert table["n_obs"].gt(0).all()


def test_real_data_errors_name_the_file_and_column(tmp_path: Path) -> None:
    require_shared_data()
    with pytest.raises(FileNotFoundError, match=r"dominicks_oj_bds/oj\.csv"):
        real_elasticities(root=tmp_path)
    broken = tmp_path / "pricing" / "dominicks_oj_bds" / "oj.csv"
    broken.parent.mkdir(parents=True)
    broken.write_text((SHARED_DATA / "pricing" / "dominicks_oj_bds" / "oj.csv").read_text().replace("price", "prce"))
    with pytest.raises(ValueError, match=r"\['price'\] missing in .*oj.csv"):
        real_elasticities(root=tmp_path)
    broken.write_text("sales,price,brand,feat\n100,2.5,tropicana,0\n120,-1,tropicana,0\n")
    with pytest.raises(ValueError, match=r"oj.csv:3: column `price`"):
        real_elasticities(root=tmp_path)
