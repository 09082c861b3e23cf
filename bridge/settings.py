"""The bridge's settings: one frozen, typed object built from the environment and `.env`.

Tests build it from a plain mapping (`Settings.from_mapping`); nothing here reads `os.environ`
at import time. A missing or malformed value stops start-up with one message naming every problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bridge.errors import ConfigError

# Environment variable → field name; the contract fixes these names.
_ENV = {
    "TRACKDESK_TENANT_ID": "trackdesk_tenant_id",
    "TRACKDESK_REVENUE_ORIGIN_ID": "trackdesk_revenue_origin_id",
    "TRACKDESK_CURRENCY": "trackdesk_currency",
    "TRACKDESK_API_KEY": "trackdesk_api_key",
    "TRACKDESK_BASE_URL": "trackdesk_base_url",
    "TRACKDESK_RATE_LIMIT": "trackdesk_rate_limit",
    "TRACKDESK_RETRY_BASE": "trackdesk_retry_base",
    "STRIPE_WEBHOOK_SECRET": "stripe_webhook_secrets",
    "STRIPE_API_KEY": "stripe_api_key",
    "STRIPE_API_BASE": "stripe_api_base",
    "GENERIC_WEBHOOK_SECRET": "generic_webhook_secrets",
    "SECRET_KEY": "secret_keys",
    "DATABASE_URL": "database_url",
    "BRIDGE_ALLOW_SQLITE": "allow_sqlite",
    "DYNO": "dyno",
    "CAPTURE_ALLOWED_ORIGINS": "capture_allowed_origins",
    "CAPTURE_TOKEN_MAX_AGE": "capture_token_max_age",
    "BRIDGE_PROXY_HOPS": "proxy_hops",
    "CAPTURE_RATE_LIMIT": "capture_rate_limit",
    "BRIDGE_CONFIG": "config_path",
    "BRIDGE_API_TOKEN": "api_token",
    "ADMIN_PASSWORD": "admin_password",
    "LOG_FORMAT": "log_format",
    "PORT": "port",
    "BRIDGE_SQLITE_SYNCHRONOUS": "sqlite_synchronous",
}
_FIELD_TO_ENV = {field: env for env, field in _ENV.items()}
_LIST_FIELDS = {
    "stripe_webhook_secrets",
    "generic_webhook_secrets",
    "secret_keys",
    "capture_allowed_origins",
}


def _split(value: str) -> tuple[str, ...]:
    """Split a comma-separated variable into its non-empty, trimmed parts."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


class Settings(BaseModel):
    """Everything the bridge reads from its environment, validated once at start-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trackdesk_tenant_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    trackdesk_revenue_origin_id: str = Field(min_length=1)
    trackdesk_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    trackdesk_api_key: SecretStr | None = None
    trackdesk_base_url: str | None = Field(default=None, pattern=r"^https?://")
    trackdesk_rate_limit: float = Field(default=5.0, gt=0, le=1000)
    trackdesk_retry_base: float = Field(default=10.0, gt=0, le=3600)
    stripe_webhook_secrets: tuple[SecretStr, ...] = Field(min_length=1)
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str | None = Field(default=None, pattern=r"^https?://")
    generic_webhook_secrets: tuple[SecretStr, ...] = ()
    secret_keys: tuple[SecretStr, ...] = Field(min_length=1)
    database_url: str | None = Field(default=None, repr=False)  # it may hold a password
    allow_sqlite: bool = False
    dyno: str | None = None
    capture_allowed_origins: tuple[str, ...] = ()
    capture_token_max_age: int = Field(default=3600, gt=0, le=30 * 24 * 3600)
    proxy_hops: int | None = Field(default=None, ge=0, le=10)
    capture_rate_limit: int = Field(default=30, gt=0, le=10_000)
    config_path: Path = Path("config/bridge.toml")
    api_token: SecretStr | None = None
    admin_password: SecretStr | None = None
    log_format: Literal["json", "text"] = "json"
    port: int = Field(default=5000, gt=0, lt=65536)
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"

    @field_validator("trackdesk_currency", mode="before")
    @classmethod
    def _upper_currency(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("stripe_webhook_secrets")
    @classmethod
    def _stripe_secrets_shape(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(not s.get_secret_value().startswith("whsec_") for s in value):
            raise ValueError("every secret must start with whsec_")
        return value

    @field_validator("secret_keys")
    @classmethod
    def _secret_keys_long(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(len(s.get_secret_value()) < 16 for s in value):
            raise ValueError("each key must be at least 16 characters")
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        """Accept Heroku's `postgres://` and pick the psycopg 3 driver for PostgreSQL."""
        if not value:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        if not value.startswith(("postgresql+psycopg://", "sqlite://")):
            raise ValueError("must be a postgres://, postgresql:// or sqlite:// URL")
        return value

    @property
    def base_url(self) -> str:
        """The Trackdesk API base URL, without a trailing slash."""
        url = self.trackdesk_base_url or f"https://{self.trackdesk_tenant_id}.trackdesk.com"
        return url.rstrip("/")

    @property
    def trusted_proxy_hops(self) -> int:
        """Proxy hops in front of the app: 1 on Heroku (`DYNO` set), else 0 unless configured."""
        if self.proxy_hops is not None:
            return self.proxy_hops
        return 1 if self.dyno else 0

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from environment-like strings; raise ConfigError naming every problem."""
        values: dict[str, Any] = {}
        for name, field in _ENV.items():
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            raw = raw.strip()
            if field in _LIST_FIELDS:
                values[field] = _split(raw)
            elif field == "allow_sqlite":
                values[field] = raw.lower() in {"1", "true", "yes", "on"}
            else:
                values[field] = raw
        try:
            settings = cls(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None
        settings._check_platform()
        return settings

    def _check_platform(self) -> None:
        """Refuse SQLite where the platform wipes the disk on restart, unless allowed."""
        if self.dyno and not self.database_url and not self.allow_sqlite:
            raise ConfigError(
                "DATABASE_URL is not set and this platform's disk is not durable (DYNO is set): "
                "attach PostgreSQL, or set BRIDGE_ALLOW_SQLITE=1 to accept losing data on restart"
            )
        if self.dyno and (self.database_url or "").startswith("sqlite") and not self.allow_sqlite:
            raise ConfigError(
                "DATABASE_URL points at SQLite on a platform whose disk is not durable "
                "(DYNO is set): use PostgreSQL, or set BRIDGE_ALLOW_SQLITE=1"
            )


def _describe(exc: ValidationError) -> str:
    """One sentence naming every missing or malformed variable, never its value."""
    missing: list[str] = []
    malformed: list[str] = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        env = _FIELD_TO_ENV.get(field, field)
        if error["type"] == "missing" or (error["type"] == "too_short" and field in _LIST_FIELDS):
            missing.append(env)
        else:
            malformed.append(f"{env} ({error['msg'].removeprefix('Value error, ')})")
    parts = []
    if missing:
        parts.append("missing required settings: " + ", ".join(sorted(set(missing))))
    if malformed:
        parts.append("malformed settings: " + "; ".join(malformed))
    return "Configuration error: " + " and ".join(parts)


def environment(
    env: Mapping[str, str] | None = None, env_file: str | None = ".env"
) -> dict[str, str]:
    """The process environment (or `env`) over an optional `.env` file: the environment wins."""
    merged: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if env is None else env)
    return merged


def load_settings(env: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
    """Settings from the process environment over an optional `.env` file (environment wins)."""
    return Settings.from_mapping(environment(env, env_file))
