"""The one settings model, read from the environment (prefix ``AIJOBS_``) and validated at cold start."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# API Gateway's HTTP API gives an integration 30 s at most; a synchronous wait must end well before.
WAIT_LIMIT_S = 20


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIJOBS_", extra="ignore")

    stage: str = "dev"
    jobs_table: str = "aijobs-jobs"
    idempotency_table: str = "aijobs-idempotency"
    jobs_queue_url: str = ""
    region: str | None = None

    default_model: str = "gpt-4o-mini"
    model_base_url: str | None = None
    model_api_key: SecretStr | None = None
    model_api_key_secret_arn: str | None = None

    result_retention_hours: int = Field(default=168, ge=1)
    max_attempts: int = Field(default=4, ge=1, le=9)
    retry_base_delay_s: float = Field(default=2.0, ge=0)
    retry_max_delay_s: int = Field(default=300, ge=0, le=43_200)
    job_lease_s: int = Field(default=900, ge=30)
    idempotency_ttl_s: int = Field(default=86_400, ge=60)
    api_key_cache_s: float = Field(default=60.0, ge=0)

    # Local development only: "tenantA:keyA,tenantB:keyB" seeds keys in the dev stack.
    dev_api_keys: str | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
