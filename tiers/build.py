"""`siyu tiers build`: profiles, value tiers, lifecycle and churn risk as of a date, written and summarised.

The output is one parquet per date under `<data_dir>/tiers/`, so a schedule that runs the build daily
leaves a history of every user's tier (what a point-in-time join reads), and the summary is what an
operations team asks first: how many users in each tier, how they moved since last month, and how
each tier buys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from siyu.data import schema
from siyu.data.identity import attach_user_ids, build_identity_map
from siyu.data.store import read_table, write_table_atomic
from siyu.settings import Settings
from tiers.churn import ChurnModel, fit_churn
from tiers.profile import user_profiles, visit_gaps
from tiers.segments import LIFECYCLE, VALUE_TIERS, Thresholds, TierConfig, assign_tiers, transition_matrix
from tiers.value import LTV_COLUMNS, ValueModel, fit_value

TRANSITION_DAYS = 30  # the transition matrix compares with the tiers this many days earlier


@dataclass
class TierBuild:
    as_of: pd.Timestamp
    tiers: pd.DataFrame  # index user_id: profile columns, value_score, value_tier, lifecycle, churn_risk, LTV_COLUMNS
    thresholds: Thresholds
    churn: ChurnModel | None
    churn_note: str | None
    path: Path
    value: ValueModel | None = None
    value_note: str | None = None
    transitions: pd.DataFrame = field(default_factory=pd.DataFrame)

    def kpis(self) -> pd.DataFrame:
        """Per value tier: users, share, spend and orders this quarter, AOV, repeat rate, mean churn risk and
        mean expected spend over the LTV horizon."""
        frame = self.tiers
        grouped = frame.groupby("value_tier")
        table = pd.DataFrame(
            {
                "users": grouped.size(),
                "share": grouped.size() / max(len(frame), 1),
                "monetary_90d": grouped["monetary_90d"].mean(),
                "orders_90d": grouped["frequency_90d"].mean(),
                "aov_90d": grouped["monetary_90d"].sum() / grouped["frequency_90d"].sum().where(lambda s: s > 0),
                "repeat_rate": grouped["frequency_90d"].apply(lambda f: float((f >= 2).mean())),
                "churn_risk": grouped["churn_risk"].mean(),
                "ltv_spend": grouped["ltv_spend"].mean(),
            }
        )
        return table.reindex(list(VALUE_TIERS))

    def lifecycle_sizes(self) -> pd.Series:
        return self.tiers["lifecycle"].value_counts().reindex(list(LIFECYCLE), fill_value=0)


def read_log(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events with unified user ids, and the item table (resolving identities first if never done)."""
    if not settings.identity_map_path.exists() and settings.identity_links_path.exists():
        build_identity_map(settings)
    events = attach_user_ids(
        read_table(settings.events_dir, schema.EVENT_SCHEMA),
        read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA),
    )
    if events.empty:
        raise ValueError(f"no events under {settings.events_dir}: generate or import data first")
    return events, read_table(settings.items_path, schema.ITEM_SCHEMA)


def tiers_as_of(
    events: pd.DataFrame, items: pd.DataFrame, as_of: pd.Timestamp, config: TierConfig
) -> tuple[pd.DataFrame, Thresholds]:
    profiles = user_profiles(events, items, as_of)
    if profiles.empty:
        raise ValueError(f"no user has an event before {as_of.date()}: pick a later --as-of")
    return assign_tiers(profiles, visit_gaps(events, as_of), config)


def build_tiers(
    settings: Settings,
    as_of: pd.Timestamp | None = None,
    horizon: int = 30,
    config: TierConfig | None = None,
    compare_probabilistic: bool = False,
) -> TierBuild:
    """Tiers as of midnight UTC starting `as_of` (default: the day after the last event), written to parquet.

    `horizon` is both churn's and lifetime value's outcome window; `compare_probabilistic` also scores
    BG/NBD + Gamma-Gamma against the LTV regressors (slow: it compiles PyMC models)."""
    config = config or TierConfig()
    events, items = read_log(settings)
    as_of = midnight_utc(as_of) if as_of is not None else events["event_time"].max().floor("D") + pd.Timedelta(days=1)
    table = tier_table(events, items, as_of, horizon, config, compare_probabilistic)
    tiers = table.tiers
    transitions = pd.DataFrame()
    with_history = as_of - pd.Timedelta(days=TRANSITION_DAYS)
    if with_history > events["event_time"].min():
        before, _ = tiers_as_of(events, items, with_history, config)
        transitions = transition_matrix(before["value_tier"], tiers["value_tier"])
    path = settings.data_dir / "tiers" / f"tiers-{as_of.date()}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = tiers.reset_index().assign(as_of=as_of)
    write_table_atomic(pa.Table.from_pandas(stored, preserve_index=False), path)
    return TierBuild(
        as_of, tiers, table.thresholds, table.churn, table.churn_note, path, table.value, table.value_note, transitions
    )


@dataclass
class TierTable:
    tiers: pd.DataFrame
    thresholds: Thresholds
    churn: ChurnModel | None
    churn_note: str | None
    value: ValueModel | None
    value_note: str | None


def tier_table(
    events: pd.DataFrame,
    items: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon: int,
    config: TierConfig,
    compare_probabilistic: bool = False,
) -> TierTable:
    """Every user's tiers, churn risk and lifetime value as of `as_of`, from events before it only.

    Churn and LTV need two outcome windows of history; without them their columns are NaN and the
    note says why (tiers of a young log are still useful).
    """
    tiers, thresholds = tiers_as_of(events, items, as_of, config)
    churn, note = None, None
    try:
        churn = fit_churn(events, items, as_of, horizon)
        tiers["churn_risk"] = churn.risk(tiers)
    except ValueError as exc:
        note = f"no churn risk: {exc}"
        tiers["churn_risk"] = float("nan")
    value, value_note = None, None
    try:
        value = fit_value(events, items, as_of, horizon, compare_probabilistic)
        tiers[list(LTV_COLUMNS)] = value.predict(tiers)
    except ValueError as exc:
        value_note = f"no lifetime value: {exc}"
        tiers[list(LTV_COLUMNS)] = float("nan")
    return TierTable(tiers, thresholds, churn, note, value, value_note)


def midnight_utc(value: pd.Timestamp) -> pd.Timestamp:
    """The UTC midnight starting `value`'s day (a date without a zone is read as UTC)."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.floor("D")
