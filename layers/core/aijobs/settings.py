"""The one settings model, read from the environment (prefix ``AIJOBS_``) and validated at cold start.

A pydantic model fed by ``_environment`` rather than pydantic-settings' ``BaseSettings``: every function builds it at
cold start, and pydantic-settings' import (its sources, and asyncio through them) took a third of a bare
``import boto3`` (issue 16). What it did here, this does the same: a keyword argument wins over the environment,
names are matched whatever their case, and a value is given to pydantic as the string it is (no JSON decoding: the
structured settings parse their own strings).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from aijobs.backends import ModelBackends, parse_model_backends
from aijobs.models.common import Model

if TYPE_CHECKING:
    from aijobs.models.jobs import Priority
    from aijobs.models.tenants import Limits, TenantLimits

ENV_PREFIX = "AIJOBS_"

# API Gateway's HTTP API gives an integration 30 s at most; a synchronous wait must end well before.
WAIT_LIMIT_S = 20


class Settings(Model):
    # An invalid value is never echoed in the error: some settings hold keys.
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True, validate_default=True)

    stage: str = "dev"
    jobs_table: str = "aijobs-jobs"
    idempotency_table: str = "aijobs-idempotency"
    jobs_queue_url: str = ""  # the normal lane's queue
    jobs_dead_letter_queue_url: str = ""
    # The other priority lanes' queues and dead-letter queues; empty: the lane shares the normal lane's queue.
    jobs_high_queue_url: str = ""
    jobs_low_queue_url: str = ""
    jobs_high_dead_letter_queue_url: str = ""
    jobs_low_dead_letter_queue_url: str = ""
    deliveries_queue_url: str = ""
    results_bucket: str = ""
    # The S3 Vectors index of documents' chunks (aijobs/vectors.py), and its dimension: the embedding model's vector
    # length, which every embedding call for it must ask for (OpenAI's text-embedding-3-small: 1,536).
    vector_index_arn: str = ""
    vector_dimension: int = Field(default=1536, ge=1, le=4096)
    region: str | None = None

    default_model: str = "gpt-4o-mini"
    # The model that embeds a collection's documents and queries when the collection names none.
    embedding_model: str = "text-embedding-3-small"
    # The S3 buckets a collection's documents may name (POST /v1/collections/{id}/documents with s3): "a,b" in the
    # environment; the worker is granted reads on them (template parameter DocumentSourceBuckets). Empty: none.
    document_source_buckets: frozenset[str] = frozenset()
    model_base_url: str | None = None
    model_api_key: SecretStr | None = None
    model_api_key_secret_arn: str | None = None
    # Several backends, routing by model and fallback (aijobs/backends.py, README "Model backends"): JSON, checked
    # here at cold start. Unset or empty: the one backend above serves every model.
    model_backends: ModelBackends | None = None

    result_retention_hours: int = Field(default=168, ge=1)
    # How long a presigned URL of an output file (an embedding job's vectors, an image) works: a job read again gets
    # a new one. SigV4 presigning allows 7 days at most; a role's temporary credentials end it sooner.
    file_url_ttl_s: int = Field(default=3600, ge=60, le=604_800)
    # How many times a job runs again when its output does not match its response_format (each attempt is paid).
    output_invalid_retries: int = Field(default=1, ge=0, le=3)
    max_attempts: int = Field(default=4, ge=1, le=9)
    retry_base_delay_s: float = Field(default=2.0, ge=0)
    retry_max_delay_s: int = Field(default=300, ge=0, le=43_200)
    # The longest a provider's Retry-After is waited for (SQS hides a message 12 h at most); beyond, the job fails.
    retry_after_max_s: int = Field(default=3600, ge=0, le=43_200)
    job_lease_s: int = Field(default=900, ge=30)
    # The sweeper: how long past its due a job may be before it is repaired, how long after a repair it is looked
    # at again, and how many jobs (per index shard) and dead letters one run reads at most.
    sweep_grace_s: int = Field(default=60, ge=0)
    sweep_resend_after_s: int = Field(default=300, ge=1)
    sweep_limit: int = Field(default=200, ge=1, le=1000)
    idempotency_ttl_s: int = Field(default=86_400, ge=60)
    api_key_cache_s: float = Field(default=60.0, ge=0)
    # Bounds per caller: failed authentications per source address per window (per API instance), redeliveries of
    # one job's webhook per hour.
    auth_failures_limit: int = Field(default=20, ge=1)
    auth_failures_window_s: int = Field(default=60, ge=1, le=3600)
    redeliveries_per_hour: int = Field(default=5, ge=1, le=100)

    # Schedules: the stack's EventBridge Scheduler group, the function its schedules invoke, the role they assume.
    schedule_group: str = "default"
    scheduler_function_arn: str = ""
    scheduler_role_arn: str = ""

    # Webhooks. The deployed stack keeps both switches off: https receivers on public addresses only.
    allow_private_callbacks: bool = False  # loopback and private networks (the local stack turns it on)
    allow_http_callbacks: bool = False
    # Seconds to wait before each delivery attempt of one event, the first included; "0,5,300" in the environment.
    webhook_retry_schedule: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    # One attempt: connect_timeout_s to resolve the name and again to connect, read_timeout_s without a byte from the
    # receiver, webhook_timeout_s in all whatever the receiver does (one trickling its answer too). Well under the
    # 60 s attempt lease.
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=30)
    webhook_connect_timeout_s: float = Field(default=3.0, gt=0, le=30)
    webhook_read_timeout_s: float = Field(default=5.0, gt=0, le=30)
    # At most this many attempts in flight to one receiver host (scheme, host, port) per process; a delivery over
    # it is sent again in busy_host_delay_s to 2x that, without counting as an attempt.
    webhook_max_in_flight_per_host: int = Field(default=4, ge=1, le=100)
    webhook_busy_host_delay_s: int = Field(default=2, ge=0, le=60)
    webhook_secret_overlap_s: int = Field(default=86_400, ge=0, le=7 * 86_400)

    # Streams (GET /v1/jobs/{id}/stream). stream_url: the base URL of the front that streams (in AWS the stream
    # function's URL, which serves every route; empty: the URL a request came in on); jobs name it as `stream_url`.
    stream_url: str = ""
    # A comment line at least this often while nothing else is sent (well under the fronts' idle cut-offs), how
    # often the output log is read for new chunks, and how long one stream lasts before it closes (the client
    # resumes with Last-Event-ID; the stream function's timeout is 900 s).
    stream_heartbeat_s: float = Field(default=15.0, gt=0, le=120)
    stream_poll_s: float = Field(default=0.1, ge=0.02, le=5)
    stream_max_s: int = Field(default=840, ge=1, le=3600)
    # How long POST /v1/responses with background: false waits for its response, within the front's timeout
    # (API Gateway's 30 s; the stream function's 900 s sets 840); past it the client is told to use background mode.
    sync_wait_s: int = Field(default=WAIT_LIMIT_S, ge=1, le=3600)
    # How long after its end a batch job is listed among the batch's results (batches.BatchService.results).
    batch_results_settle_s: int = Field(default=5, ge=0, le=60)

    # The limits of a tenant that has not set its own (TenantLimits; template parameters in AWS).
    limit_requests_per_minute: int = Field(default=600, ge=1)
    limit_tokens_per_minute: int = Field(default=2_000_000, ge=1)
    limit_concurrent_jobs: int = Field(default=20, ge=1)
    limit_daily_cost_usd: float = Field(default=100.0, ge=0)
    limit_daily_cost_soft_usd: float = Field(default=80.0, ge=0)

    # The admin API (/v1/admin/): its key, or the Secrets Manager secret holding it; neither: the admin API is 404.
    admin_key: SecretStr | None = None
    admin_key_secret_arn: str | None = None

    # Local development only: "tenantA:keyA,tenantB:keyB" seeds keys in the dev stack.
    dev_api_keys: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, values: Any) -> Any:
        """``AIJOBS_<NAME>`` (any case) for each setting not given as a keyword argument."""
        if not isinstance(values, dict):
            return values
        environment = {name[len(ENV_PREFIX):].lower(): value for name, value in os.environ.items()
                       if name.upper().startswith(ENV_PREFIX)}
        return {**{name: environment[name] for name in cls.model_fields if name in environment}, **values}

    @field_validator("model_backends", mode="before")
    @classmethod
    def _backends_are_json(cls, value: object) -> object:
        return parse_model_backends(value)

    @model_validator(mode="after")
    def _backends_fit_the_stage(self) -> Settings:
        """A key written in the configuration is for the local stack: a deployed one reads its keys from secrets;
        and the default model must have a backend, or every job that names none would fail."""
        if self.model_backends is None:
            return self
        literal = self.model_backends.literal_keys()
        if literal and self.stage != "local":
            raise ValueError(f"AIJOBS_MODEL_BACKENDS: backends {', '.join(literal)} have an api_key written in the "
                             "configuration, which only the local stack allows; give api_key_secret_arn")
        if self.model_backends.route(self.default_model) is None:
            raise ValueError("AIJOBS_MODEL_BACKENDS: the default model (AIJOBS_DEFAULT_MODEL) matches no route, and "
                             "there is no default_backend")
        return self

    @field_validator("document_source_buckets", mode="before")
    @classmethod
    def _buckets_are_a_list(cls, value: object) -> object:
        return frozenset(b.strip() for b in value.split(",") if b.strip()) if isinstance(value, str) else value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _schedule_is_seconds(cls, value: object) -> object:
        return parse_retry_schedule(value) if isinstance(value, str) else value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_is_bounded(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not 1 <= len(value) <= 20 or any(not 0 <= d <= 86_400 for d in value):
            raise ValueError("must hold 1-20 delays of 0-86400 seconds")
        return value

    def default_limits(self, limits: TenantLimits | None = None) -> Limits:
        """The limits in force for a tenant that set ``limits`` (None: nothing set)."""
        from aijobs.models.tenants import Limits

        set_ = limits.model_dump(exclude_none=True) if limits is not None else {}
        return Limits.model_validate({
            "requests_per_minute": self.limit_requests_per_minute, "tokens_per_minute": self.limit_tokens_per_minute,
            "concurrent_jobs": self.limit_concurrent_jobs, "daily_cost_usd": self.limit_daily_cost_usd,
            "daily_cost_soft_usd": self.limit_daily_cost_soft_usd, **set_})

    @property
    def jobs_queue_urls(self) -> dict[Priority, str]:
        """Each priority lane's queue URL (empty: the normal lane's queue)."""
        return {"high": self.jobs_high_queue_url, "normal": self.jobs_queue_url, "low": self.jobs_low_queue_url}

    @property
    def jobs_dead_letter_queue_urls(self) -> list[str]:
        """The jobs dead-letter queues the sweeper reads: every lane's that is set, each once."""
        return list(dict.fromkeys(url for url in (self.jobs_high_dead_letter_queue_url,
                                                  self.jobs_dead_letter_queue_url,
                                                  self.jobs_low_dead_letter_queue_url) if url))

    @property
    def retention_s(self) -> int:
        return self.result_retention_hours * 3600


def parse_retry_schedule(value: str) -> tuple[int, ...]:
    """``"0,5,300"`` -> (0, 5, 300): the wait before each attempt, the first included."""
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise ValueError("must be comma-separated whole seconds, e.g. 0,5,300") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
