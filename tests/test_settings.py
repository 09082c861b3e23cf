"""Settings: one frozen object from the environment; one clear message naming every problem."""

from __future__ import annotations

import pytest

from bridge.errors import ConfigError
from bridge.settings import Settings, load_settings
from tests.conftest import BASE_ENV, make_settings

REQUIRED = [
    "TRACKDESK_TENANT_ID",
    "TRACKDESK_REVENUE_ORIGIN_ID",
    "STRIPE_WEBHOOK_SECRET",
    "SECRET_KEY",
]


def test_nothing_set_names_every_required_variable():
    with pytest.raises(ConfigError) as exc:
        Settings.from_mapping({})
    for name in REQUIRED:
        assert name in exc.value.message
    assert "\n" not in exc.value.message


def test_malformed_values_are_named_without_their_values():
    env = {
        **BASE_ENV,
        "TRACKDESK_RATE_LIMIT": "fast",
        "STRIPE_WEBHOOK_SECRET": "sk_live_oops",
        "SECRET_KEY": "short",
        "DATABASE_URL": "mysql://x",
        "LOG_FORMAT": "xml",
    }
    with pytest.raises(ConfigError) as exc:
        Settings.from_mapping(env)
    message = exc.value.message
    for name in (
        "TRACKDESK_RATE_LIMIT",
        "STRIPE_WEBHOOK_SECRET",
        "SECRET_KEY",
        "DATABASE_URL",
        "LOG_FORMAT",
    ):
        assert name in message
    assert "sk_live_oops" not in message and "short" not in message.split("(")[0]


def test_defaults_and_derived_values():
    settings = make_settings(TRACKDESK_BASE_URL="", TRACKDESK_RATE_LIMIT="")
    assert settings.trackdesk_rate_limit == 5
    assert settings.base_url == "https://acme.trackdesk.com"
    assert settings.port == 5000 and settings.log_format == "text"
    assert settings.trusted_proxy_hops == 0


def test_secrets_never_show_in_repr():
    settings = make_settings(
        TRACKDESK_API_KEY="td-personal-token-123",
        DATABASE_URL="postgres://bridge:db-password-456@db.example:5432/bridge",
    )
    text = repr(settings) + str(settings)
    assert "td-personal-token-123" not in text
    assert "db-password-456" not in text
    assert "whsec_test_bridge" not in text
    assert "test-secret-key" not in text


def test_several_secrets_are_split_for_rotation():
    settings = make_settings(
        STRIPE_WEBHOOK_SECRET="whsec_a, whsec_b",
        SECRET_KEY="newest-key-0123456789,older-key-0123456789",
    )
    assert [s.get_secret_value() for s in settings.stripe_webhook_secrets] == ["whsec_a", "whsec_b"]
    assert settings.secret_keys[0].get_secret_value() == "newest-key-0123456789"


@pytest.mark.parametrize("url", ["postgres://u@h/db", "postgresql://u@h/db"])
def test_heroku_database_urls_use_psycopg3(url):
    assert make_settings(DATABASE_URL=url).database_url == "postgresql+psycopg://u@h/db"


def test_sqlite_refused_where_the_disk_is_not_durable():
    with pytest.raises(ConfigError, match="BRIDGE_ALLOW_SQLITE"):
        make_settings(DYNO="web.1")
    assert make_settings(DYNO="web.1", BRIDGE_ALLOW_SQLITE="1").allow_sqlite
    settings = make_settings(DYNO="web.1", DATABASE_URL="postgres://u@h/db")
    assert settings.trusted_proxy_hops == 1


def test_env_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in BASE_ENV.items()) + "\nPORT=8000\n")
    settings = load_settings({"PORT": "9000"}, env_file=str(env_file))
    assert settings.port == 9000
    assert settings.trackdesk_tenant_id == "acme"
