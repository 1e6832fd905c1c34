"""One settings object that every part of siyu reads, so no module hides its own constants.

Values come from (highest first) explicit arguments, `SIYU_*` environment variables, a `.env`
file, then the defaults below. Nothing here touches the disk at import time.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as `SIYU_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="SIYU_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("data"), description="(path) where events, items, prices, features and the Feast registry live"
    )
    online_store: str = Field(
        "sqlite",
        description="(str) Feast online store: `sqlite` (file under data_dir) or a `redis://host:port[/db]` URL",
    )
    feast_project: str = Field("siyu", description="(str) Feast project name; also namespaces keys in a shared Redis")
    mlflow_tracking_uri: str = Field("sqlite:///mlruns/mlflow.db", description="(str) MLflow backend store URI")
    mlflow_artifact_root: Path = Field(Path("mlruns/artifacts"), description="(path) where MLflow writes run artifacts")
    conversion_model_name: str = Field(
        "siyu-conversion", description="(str) registered model name of the conversion ranker"
    )
    demand_model_name: str = Field(
        "siyu-demand", description="(str) registered model name of the demand model; serving loads @champion"
    )
    sequence_model_name: str = Field(
        "siyu-sequence", description="(str) registered model name of the decision-path (next-item) model"
    )
    pricing_min_margin: float | None = Field(
        0.0, ge=0, description="(fraction) default rule: price >= cost x (1 + this) unless a SKU allows clearance"
    )
    pricing_max_change: float | None = Field(
        None, gt=0, le=1, description="(fraction) default rule: most a price may move from one period to the next"
    )
    pricing_markdown_only: bool = Field(False, description="(bool) default rule: prices only ever go down")
    pricing_endings: str | None = Field(
        None, description="(str) default rule: allowed fractional yuan endings, e.g. `0.9,0.99`, or `0` for whole yuan"
    )
    pricing_ladder_low: float = Field(0.5, gt=0, description="(fraction of today's price) lowest ladder price")
    pricing_ladder_high: float = Field(1.2, gt=0, description="(fraction of today's price) highest ladder price")
    pricing_ladder_steps: int = Field(15, ge=2, le=100, description="(int) prices on the default ladder")
    promote_auc_margin: float = Field(
        0.001, ge=0, description="(AUC) how much a conversion challenger must beat the champion by to replace it"
    )
    promote_ndcg_margin: float = Field(
        0.002, ge=0, description="(NDCG@10) how much a decision-path challenger must beat the champion by"
    )
    seed: int = Field(42, description="(int) default random seed for generation and training")
    api_key: str = Field("dev-pricing-key", description="(str) key the pricing endpoint requires in `X-API-Key`")
    host: str = Field("127.0.0.1", description="(str) address `siyu serve` binds")
    port: int = Field(3000, ge=1, le=65535, description="(int) port `siyu serve` binds")
    tier_every_days: int = Field(
        7, ge=1, le=90, description="(int) days between the tier snapshots `siyu features build` writes to Feast"
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="(bytes) largest request body the API reads; larger ones get 413"
    )
    online_timeout_ms: float = Field(
        100.0, gt=0, description="(ms) serving's connect and read timeout for the Redis online store (no retries)"
    )
    breaker_cooldown_seconds: float = Field(
        2.0, gt=0, description="(s) after an online-store failure, how long serving answers from fallbacks untried"
    )
    compile_trees: bool = Field(
        True, description="(bool) serve the conversion model's trees compiled to native code (needs gcc or clang)"
    )
    workers: int = Field(2, ge=1, le=64, description="(int) server processes; each holds its own copy of the models")
    trace_requests: bool = Field(
        False,
        description="(bool) open an OpenTelemetry span per request; turn on together with a BentoML tracing exporter "
        "(without one every span is built and dropped: 0.3 ms of a /recommend request's ~3.7 ms, measured)",
    )
    overstock_days_of_cover: float = Field(
        60.0, gt=0, description="(days) an item with more stock than this many days of sales counts as promoted"
    )
    tier_rules: dict[str, dict[str, float]] | None = Field(
        None,
        description="(JSON) the tier playbook: value tier -> default /recommend rules, e.g."
        ' `{"core": {"exploration_share": 0.2}}`; unset: the built-in playbook (serving/recommend/tier_strategy.py)',
    )
    pinned_versions: dict[str, str] = Field(
        default_factory=dict,
        description="(JSON) registered model name -> version serving loads instead of following @champion"
        " (a Bento built by `siyu bento` pins the versions it was built with)",
    )
    timezone: str = Field("Asia/Shanghai", description="(IANA name) the brand's local time, for reach-list hours")
    events_poll_seconds: float = Field(
        0.25, gt=0, description="(s) how often serving looks for new parts of the event log (fresh events)"
    )
    views_rebuild_seconds: float = Field(
        600.0,
        ge=0,
        description="(s) while the event log only gains parts (served as fresh events), how old the views of the"
        " log may grow before a full rebuild (seconds of CPU at 30k users, slowing requests beside it)",
    )
    item_refresh_seconds: float = Field(
        60.0,
        gt=0,
        description="(s) how often serving checks the item table's files (rereading them when they changed), the model "
        "aliases and users' paths",
    )

    @field_validator("online_store")
    @classmethod
    def _known_online_store(cls, value: str) -> str:
        if value != "sqlite" and not value.startswith(("redis://", "rediss://")):
            raise ValueError(f"online_store must be 'sqlite' or a redis:// URL, got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone must be an IANA name such as 'Asia/Shanghai', got {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _ladder_span(self) -> Settings:
        if self.pricing_ladder_low >= self.pricing_ladder_high:
            raise ValueError(
                f"pricing_ladder_low ({self.pricing_ladder_low}) must be below pricing_ladder_high"
                f" ({self.pricing_ladder_high})"
            )
        return self

    @cached_property
    def redis_connection_string(self) -> str:
        """The online-store URL in Feast's `host:port,db=N` form (Feast does not take URLs)."""
        url = urlparse(self.online_store)
        db = (url.path or "/0").lstrip("/") or "0"
        parts = [f"{url.hostname or '127.0.0.1'}:{url.port or 6379}", f"db={db}"]
        if url.password:
            parts.append(f"password={url.password}")
        if url.scheme == "rediss":
            parts.append("ssl=true")
        return ",".join(parts)

    # Layout of data_dir: one place names every file, so readers and writers agree.
    @property
    def events_dir(self) -> Path:
        return self.data_dir / "events"

    @property
    def items_path(self) -> Path:
        return self.data_dir / "items.parquet"

    @property
    def prices_path(self) -> Path:
        return self.data_dir / "prices.parquet"

    @property
    def inventory_path(self) -> Path:
        return self.data_dir / "inventory.parquet"

    @property
    def identity_links_path(self) -> Path:
        return self.data_dir / "identity_links.parquet"

    @property
    def identity_map_path(self) -> Path:
        return self.data_dir / "identity_map.parquet"

    @property
    def truth_dir(self) -> Path:
        """Ground truth of the synthetic world: read by evaluation only, never by features or models."""
        return self.data_dir / "truth"

    @property
    def truth_impressions_path(self) -> Path:
        """Every impression's true purchase probability and in-stock flag."""
        return self.truth_dir / "impressions.parquet"

    @property
    def truth_demand_path(self) -> Path:
        """Every item's true expected units per day at each price of a ladder (what a pricing oracle knows)."""
        return self.truth_dir / "demand.parquet"

    @property
    def truth_items_path(self) -> Path:
        """Every item's hidden parameters: appeal, stock kind, shelf life, category share, repurchase interval."""
        return self.truth_dir / "items.parquet"

    @property
    def truth_complements_path(self) -> Path:
        """Every item's complements (item_id, complement_id): bought together in the two weeks after a purchase."""
        return self.truth_dir / "complements.parquet"

    @property
    def truth_next_item_path(self) -> Path:
        """Per user, the ingredients of the true next-item distribution at their last observable step."""
        return self.truth_dir / "next_item.parquet"

    @property
    def truth_world_path(self) -> Path:
        """The WorldConfig a generated world came from (its start date and number of days)."""
        return self.truth_dir / "world.json"

    @property
    def truth_identity_path(self) -> Path:
        """Which identifiers belong to one person."""
        return self.truth_dir / "identity.parquet"

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def feast_dir(self) -> Path:
        return self.data_dir / "feast"


def settings_under(root: Path, **overrides: object) -> Settings:
    """Settings whose data, MLflow store and artifacts all live under `root` (tests, benchmarks, sandboxes)."""
    values: dict[str, object] = {
        "data_dir": root / "data",
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "mlflow_artifact_root": root / "mlruns" / "artifacts",
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def get_settings(**overrides: object) -> Settings:
    """Fresh settings (env is re-read each call so tests and the CLI can override per run)."""
    return Settings(**overrides)
