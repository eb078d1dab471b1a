"""Typed settings, read once from the environment and validated at start."""

# Annotations are evaluated as each class is made (no `from __future__ import annotations`): pydantic would compile
# and evaluate each field's from its text, a share of every function's cold start (README: Measured > Cold start).

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class EnvironmentSettings(BaseSettings):
    """A settings model read from the environment alone, its validation built when it is first read: a function
    reads only some of the models, and building the others would lengthen its cold start. The service configures
    no `.env` file and no secrets directory, whose sources would repeat the environment's work for each field."""

    model_config = SettingsConfigDict(defer_build=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings


class DatabaseSettings(EnvironmentSettings):
    """Where the database is and how to log in, in order of precedence: a URL (locally); RDS Proxy with IAM
    authentication (the stack's functions); a Secrets Manager secret in the RDS JSON format (the stack's schema
    migrations, as the master user: RDS's secret holds the user and password alone, and DB_HOST, DB_PORT and DB_NAME
    name the instance; `feedctl moto`'s the same)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    database_url: SecretStr | None = Field(default=None, description="libpq URL; wins over everything else")
    db_iam_auth: bool = Field(default=False, description="through RDS Proxy with an IAM token (rds-db:connect)")
    db_host: str | None = Field(
        default=None,
        description="host of the proxy (with DB_IAM_AUTH) or of the database (with a DB_SECRET_ARN naming none)",
    )
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_name: str | None = Field(default=None, description="database name (with DB_IAM_AUTH, or a secret naming none)")
    db_user: str | None = Field(
        default=None,
        description="database user the token is signed for (with DB_IAM_AUTH); in the stack, the function's own, "
        "member of its function's role (migration 0061)",
    )
    db_secret_arn: str | None = Field(
        default=None, description="secret with username and password, and host, port, dbname unless DB_* give them"
    )
    db_statement_timeout_ms: int = Field(default=2000, ge=100, le=900_000)
    db_connect_timeout_s: int = Field(default=5, ge=1, le=60)

    @property
    def through_rds_proxy(self) -> bool:
        """Connections go to RDS Proxy with an IAM token (DATABASE_URL, when set, wins)."""
        return self.database_url is None and self.db_iam_auth

    @model_validator(mode="after")
    def _iam_auth_names_the_endpoint(self) -> Self:
        if self.db_iam_auth and not (self.db_host and self.db_name and self.db_user):
            raise ValueError("DB_IAM_AUTH needs DB_HOST, DB_NAME and DB_USER")
        return self


class ProxyProbeSettings(EnvironmentSettings):
    """The schema resource's check, after each run, that a login through RDS Proxy with an IAM token works (the
    functions' way in, which its own login to the instance does not take): the proxy's endpoint and a user of its
    own, which may connect and do nothing else. Both unset (a local run: no proxy, no IAM): the check is skipped,
    and the resource says so in its answer (`ProxyLogin`)."""

    model_config = SettingsConfigDict(env_prefix="DB_PROXY_PROBE_", extra="ignore")

    host: str | None = Field(default=None, description="RDS Proxy's endpoint; unset: no check (local runs)")
    user: str | None = Field(
        default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="the probe's database user (in rds_iam)"
    )
    # Long enough for a proxy target registered on this very deploy (the migrations, when they logged in through the
    # proxy, retried their connection for their whole budget); a broken path costs this long before the rollback.
    timeout_s: int = Field(
        default=300, ge=1, le=540, description="how long logins are retried (a user just given rds_iam, a new target)"
    )

    @property
    def enabled(self) -> bool:
        return self.host is not None

    @model_validator(mode="after")
    def _host_and_user_together(self) -> Self:
        if (self.host is None) != (self.user is None):
            raise ValueError("set DB_PROXY_PROBE_HOST and DB_PROXY_PROBE_USER together, or neither (no probe)")
        return self


class ScoringSettings(EnvironmentSettings):
    """Weights, half-lives and limits of the scheduled score recomputation."""

    model_config = SettingsConfigDict(env_prefix="SCORING_", extra="ignore")

    popularity_half_life_days: float = Field(default=7.0, ge=1)
    affinity_half_life_days: float = Field(default=60.0, ge=1)
    buy_again_half_life_days: float = Field(default=30.0, ge=1, description="decay of the purchase frequency")
    trending_half_life_hours: float = Field(default=24.0, ge=1, description="the short horizon of trending")
    trending_prior_per_day: float = Field(default=5.0, gt=0, description="smoothing of the trending ratio")
    purchase_weight: float = Field(default=5.0, ge=0)
    add_to_cart_weight: float = Field(default=2.0, ge=0)
    click_weight: float = Field(default=1.0, ge=0)
    recompute_statement_timeout_ms: int = Field(default=240_000, ge=1000)
    chunk_events: int = Field(default=200_000, ge=1, description="events scored per transaction of a run")
    rebase_after_days: int = Field(default=90, ge=1, le=365, description="epoch age that triggers a rebase")
    pairs_half_life_days: float = Field(default=90.0, ge=1, description="decay of the bought-together counts")
    pairs_min_support: int = Field(default=3, ge=1, description="baskets a pair needs before it is scored")
    pairs_top_k: int = Field(default=50, ge=1, le=1000, description="bought-together items kept per item")
    pairs_rescore_bound: float = Field(
        default=0.1,
        ge=0,
        le=10,
        description="an item's bought-together rows (its list, and the rows of other lists naming it) are rescored "
        "once its basket count has grown by more than this fraction since they last were (a list that gets rows, in "
        "full on every run): a score is at most (1 + bound) too high meanwhile; 0: exact on every run (a lowered bound "
        "holds for the rows rescored after it: `feedctl recompute --full` rescores every row at once)",
    )

    @model_validator(mode="after")
    def _exponents_stay_representable(self) -> Self:
        # Raw scores grow as 2^(epoch age / half-life) until the next rebase; double precision ends near 2^1023.
        shortest_days = min(self.trending_half_life_hours / 24, self.popularity_half_life_days,
                            self.affinity_half_life_days, self.buy_again_half_life_days,
                            self.pairs_half_life_days)  # fmt: skip
        if self.rebase_after_days / shortest_days > 900:
            raise ValueError("rebase_after_days is too long for the shortest half-life (keep their ratio ≤ 900)")
        return self


# The user shards a fanned-out chunk may have (SCORING_FANOUT_SHARDS; `feedctl bench fanout --shards`).
MIN_SHARDS = 2
MAX_SHARDS = 256


class FanoutSettings(EnvironmentSettings):
    """When and how the recompute fans a chunk's per-user work out to shards consumed from an SQS queue."""

    model_config = SettingsConfigDict(env_prefix="SCORING_FANOUT_", extra="ignore")

    queue_url: str | None = Field(default=None, description="the shard queue; unset or empty: no fan-out")
    shards: int = Field(default=4, ge=MIN_SHARDS, le=MAX_SHARDS, description="user shards per fanned-out chunk")
    min_events: int = Field(default=50_000, ge=1, description="a chunk of fewer events is scored in one transaction")
    resend_after_s: int = Field(
        default=300, ge=1, description="a shard not done this long after its message is sent again"
    )
    poll_interval_s: float = Field(default=1.0, gt=0, le=60, description="how often the coordinator checks its shards")

    @property
    def enabled(self) -> bool:
        return bool(self.queue_url)


class ModelScoreSettings(EnvironmentSettings):
    """Where ML engineers drop model scores: s3://<bucket>/<prefix><model>/<file>.csv or .parquet."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    model_scores_bucket: str | None = Field(default=None, description="unset: no import")
    # Ends with "/" (or is empty): each model is the folder after it; without the slash no key names a model, and
    # every import would silently find nothing.
    model_scores_prefix: str = Field(default="model-scores/", pattern=r"^(.*/)?$")


class FeedSettings(EnvironmentSettings):
    """Where the ranking config comes from, paging, real-time signals and the buy-again timing."""

    model_config = SettingsConfigDict(env_prefix="FEED_", extra="ignore")

    ranking_config_file: Path | None = Field(default=None, description="JSON ranking config; default: packaged")
    appconfig_application: str | None = Field(default=None, description="set: the config comes from AppConfig")
    appconfig_environment: str = "default"
    appconfig_profile: str = "ranking"
    appconfig_max_age_s: int = Field(default=60, ge=1, le=3600)
    page_sections: int = Field(default=4, ge=1, le=30, description="sections per page when `limit` is absent")
    snapshot_ttl_s: int = Field(default=1800, ge=60, le=86_400, description="how long next_cursor works")
    cursor_secret: SecretStr | None = Field(default=None, description="HMAC key of cursors (local runs)")
    cursor_secret_arn: str | None = Field(default=None, description="Secrets Manager secret holding the key")
    lambda_function_name: str | None = Field(default=None, validation_alias="AWS_LAMBDA_FUNCTION_NAME")
    realtime_window_minutes: int = Field(default=360, ge=1, le=10_080, description="events read as they come")
    buy_again_pool: int = Field(default=200, ge=10, le=2000, description="purchased items re-ranked by timing")
    store_shelf_ttl_s: float = Field(
        default=30, ge=0, le=600, description="how long a shelf is used unchecked; 0: checked per request"
    )
    store_shelf_cache_size: int = Field(default=50, ge=1, le=10_000, description="store shelves a container keeps")
    buy_again_due_weight: float = Field(default=0.5, ge=0, description="boost of an item due for replenishment")
    buy_again_due_width: float = Field(default=0.7, gt=0, description="tolerance of the timing, log scale")

    @model_validator(mode="after")
    def _lambda_signs_cursors_with_a_real_key(self) -> Self:
        if self.lambda_function_name and not (self.cursor_secret or self.cursor_secret_arn):
            raise ValueError("in Lambda, set FEED_CURSOR_SECRET_ARN (or FEED_CURSOR_SECRET)")
        return self


class IngestSettings(EnvironmentSettings):
    """Limits of the ingestion and catalog endpoints."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    max_events_per_batch: int = Field(default=500, ge=1, le=10_000)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=10_485_760, description="API Gateway's cap is 10 MB")
    late_event_horizon_days: int = Field(default=30, ge=1, le=3650, description="oldest occurred_at accepted")
    future_tolerance_s: int = Field(default=300, ge=0, le=3600, description="client clocks may run this fast")
    max_catalog_items_per_request: int = Field(default=1000, ge=1, le=10_000)
    erasure_wait_ms: int = Field(
        default=5000, ge=100, le=8000, description="how long an erasure waits for a running score run, then 503"
    )
    erasure_timeout_ms: int = Field(
        default=8000, ge=1000, le=9000,
        description="the whole erasure: its waits, deletes and commit (the function times out at 10 s); its deletes "
        "get what the waits leave, and the waits must leave at least the statement timeout (checked by the erasure)",
    )  # fmt: skip
    catalog_item_cache_size: int = Field(
        default=200_000, ge=0, le=5_000_000, description="catalog item ids a container remembers as existing"
    )

    @model_validator(mode="after")
    def _erasure_waits_leave_time_to_delete(self) -> Self:
        if self.erasure_wait_ms >= self.erasure_timeout_ms:
            raise ValueError(
                f"INGEST_ERASURE_WAIT_MS ({self.erasure_wait_ms}) leaves no time of INGEST_ERASURE_TIMEOUT_MS "
                f"({self.erasure_timeout_ms}) for the deletes: it must be less, by at least DB_STATEMENT_TIMEOUT_MS"
            )
        return self


MetricsProvider = Literal["cloudwatch", "datadog"]


class ObservabilitySettings(EnvironmentSettings):
    """Where metrics go, and whether the X-Ray SDK records subsegments."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    metrics_provider: MetricsProvider = Field(default="cloudwatch", description="CloudWatch EMF, or Datadog")
    trace_disabled: bool = Field(default=False, validation_alias="POWERTOOLS_TRACE_DISABLED")
    lambda_task_root: str | None = Field(default=None, validation_alias="LAMBDA_TASK_ROOT")
    sam_local: bool = Field(default=False, validation_alias="AWS_SAM_LOCAL")

    @property
    def xray_sdk_tracing(self) -> bool:
        """Powertools' Tracer records subsegments only in Lambda (not under `sam local`) and not with
        POWERTOOLS_TRACE_DISABLED; Lambda's active tracing records every invocation either way."""
        return self.lambda_task_root is not None and not self.sam_local and not self.trace_disabled


class AuthSettings(EnvironmentSettings):
    """Who may call what (feedcore.api.authorization)."""

    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")

    admin_group: str = Field(default="admin", min_length=1, description="cognito:groups member = admin")
    dev_tokens: bool = Field(default=False, description="trust unsigned `dev:<sub>` tokens: local use only")
    lambda_function_name: str | None = Field(default=None, validation_alias="AWS_LAMBDA_FUNCTION_NAME")
    sam_local: bool = Field(default=False, validation_alias="AWS_SAM_LOCAL")

    @model_validator(mode="after")
    def _no_development_tokens_in_lambda(self) -> Self:
        # A second lock besides the template: a deployed function never trusts unsigned tokens.
        if self.dev_tokens and self.lambda_function_name and not self.sam_local:
            raise ValueError("AUTH_DEV_TOKENS is for local runs only; it is refused in Lambda")
        return self


class ApiSettings(EnvironmentSettings):
    """How the API answers browsers."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    cors_allow_origin: str | None = Field(default=None, description="the one origin allowed by CORS")


@lru_cache
def observability_settings() -> ObservabilitySettings:
    return ObservabilitySettings()


@lru_cache
def auth_settings() -> AuthSettings:
    return AuthSettings()


@lru_cache
def api_settings() -> ApiSettings:
    return ApiSettings()


@lru_cache
def database_settings() -> DatabaseSettings:
    return DatabaseSettings()


@lru_cache
def proxy_probe_settings() -> ProxyProbeSettings:
    return ProxyProbeSettings()


@lru_cache
def scoring_settings() -> ScoringSettings:
    return ScoringSettings()


@lru_cache
def feed_settings() -> FeedSettings:
    return FeedSettings()


@lru_cache
def ingest_settings() -> IngestSettings:
    return IngestSettings()


@lru_cache
def model_score_settings() -> ModelScoreSettings:
    return ModelScoreSettings()


@lru_cache
def fanout_settings() -> FanoutSettings:
    return FanoutSettings()
