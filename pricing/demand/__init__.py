"""The demand model: expected units per SKU per day at any price, for the price optimiser and the API.

    log E[units] = a_sku + weekday + trend + features + b_sku * log(price / reference_sku) + promo

fitted by maximum (penalised) Poisson likelihood, because units are small counts (most SKU-days
sell nothing), and the optimiser needs a mean at prices the SKU has never had.

Decisions. `compare_candidates` fits each variant on the first 80% of days and scores the rest;
numbers below are means over five generated worlds (3,000 users x 400 items x 60 days, four
seeds, plus one of 120 days). The main score is the censored log-likelihood of every later day
(lower NLL is better), because the usual deviance on non-censored days favours models that
under-predict: the days that did not sell out are the days demand happened to be low.

- **Censoring.** A sold-out day only says demand was *at least* the units sold, so its
  likelihood is P(D >= units) (right-censored Poisson). On data simulated from the model with
  sell-outs on most promotion days, treating those days as exact erases the promotion lift and
  pulls slopes 0.2-0.6 towards zero; the censored fit recovers them (tests/unit/test_demand.py).
  In the generated worlds only ~6% of days are censored (mostly empty shelves, which carry no
  information either way), and the three treatments score within 0.003 NLL of each other.
- **Pooling.** Most SKUs sell a unit every few days and change price rarely, so a SKU's own
  slope is noise. Slopes are shrunk hierarchically: b_sku ~ N(b_category, tau^2),
  b_category ~ N(b_global, omega^2); intercepts likewise a_sku ~ N(a_category, sigma_a^2). The
  variances are estimated (Laplace marginal likelihood), so the weight of a SKU's own data
  against its category is set by the data, as in empirical Bayes: w = tau^2 / (tau^2 + se^2).
  Unpooled slopes score worse (NLL 0.7193 vs 0.7158) and are useless as elasticities.
- **Monotone.** Every slope is bounded at b <= 0, so expected units never rise with price.
  The elasticity d log E[units] / d log price is b_sku at every price.
- **Reference.** Each SKU's list price is its fixed reference: a permanent price change keeps
  moving demand. A trailing "regular price" reference forgets the change once it catches up:
  its elasticities shrink (-1.63 vs -2.07) and it scores worse (0.7168).
- **Features.** The SKU's buyers' purchase frequency is used (neutral on these worlds). Its
  inventory turnover is not: a trailing own-sales ratio next to SKU intercepts acts as a lagged
  outcome (negative coefficient, Nickell bias) and made every score worse (NLL 0.7272).
- **Trend.** Piecewise linear with a knot every two weeks, extrapolated at most 7 days past the
  data, then held: a member base grows but not log-linearly. Holding it at once under-predicts
  sales by 2.7%; extrapolating without limit over-predicts the later window by 8%.
- **Trees.** LightGBM (Poisson, monotone in price, non-censored days) has the lowest MAE on
  non-censored days but under-predicts sales by 20% and promotion days by 31% (NLL 0.7360).
- **Overdispersion.** The likelihood is divided by a Pearson dispersion (quasi-Poisson, never
  below 1), which widens standard errors and lets the priors pull harder when baskets are big.
- **Uncertainty.** Standard errors are the Laplace posterior (inverse Hessian of the penalised
  objective), computed exactly by block elimination: each SKU's (a, b) pair only meets the few
  shared parameters, so the cost is linear in the number of SKUs.

The registry side (`train_and_register`, `load_champion`) logs every fit to MLflow and
registers it as a pyfunc model; the model itself is stored as parquet + json, never a pickle.

Modules: `config` (DemandConfig and constants), `design` (the panel and design rows), `likelihood`,
`fit` (`fit_demand`), `model` (`DemandModel`), `evaluation` (holdout scores, `compare_candidates`),
`registry` (MLflow), `sales` (the daily sales panel), `real_data` (elasticities on real data).
"""

from pricing.demand.config import FEATURES, DemandConfig
from pricing.demand.design import trend_basis, trend_knots
from pricing.demand.evaluation import (
    CANDIDATES,
    censored_log_likelihood,
    compare_candidates,
    expected_sales,
    holdout_metrics,
    time_split,
)
from pricing.demand.fit import fit_demand
from pricing.demand.likelihood import _loglik
from pricing.demand.model import DemandModel

# DemandPyfunc stays importable as pricing.demand.DemandPyfunc: versions registered before the split pickled it there.
from pricing.demand.registry import (
    DemandPyfunc,
    DemandResult,
    load_champion,
    plot_demand,
    predict_rows,
    train_and_register,
)

__all__ = [
    "CANDIDATES",
    "FEATURES",
    "DemandConfig",
    "DemandModel",
    "DemandPyfunc",
    "DemandResult",
    "_loglik",
    "censored_log_likelihood",
    "compare_candidates",
    "expected_sales",
    "fit_demand",
    "holdout_metrics",
    "load_champion",
    "plot_demand",
    "predict_rows",
    "time_split",
    "train_and_register",
    "trend_basis",
    "trend_knots",
]
