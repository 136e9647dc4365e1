"""Settings validation: URL normalization, refusal of bad URLs and default secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hpcgate.settings import DEFAULT_SECRET, Settings

GOOD_SECRET = {"secret_key": "x" * 32}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("HPCGATE_"):
            monkeypatch.delenv(key)


def test_defaults_in_dev_mode() -> None:
    s = Settings(env="dev")
    assert s.database.url is None
    assert s.auth.secret_key == DEFAULT_SECRET
    assert s.scheduler.poll_interval_s == 10.0


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValidationError, match="built-in default"):
        Settings(env="production")


@pytest.mark.parametrize(
    ("env", "host"),
    [("test", "127.0.0.1"), ("production", "127.0.0.1"), ("dev", "0.0.0.0"), ("dev", "10.1.2.3")],
)
def test_builtin_secret_only_in_dev_on_loopback(env: str, host: str) -> None:
    with pytest.raises(ValidationError, match="built-in default"):
        Settings(env=env, host=host)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_builtin_secret_in_dev_on_loopback(host: str) -> None:
    assert Settings(env="dev", host=host).auth.secret_key == DEFAULT_SECRET


def test_bind_address_is_checked_too() -> None:
    from hpcgate.settings import check_bind

    dev = Settings(env="dev")
    check_bind(dev, "127.0.0.1")
    with pytest.raises(ValueError, match="built-in default"):
        check_bind(dev, "0.0.0.0")
    check_bind(Settings(env="test", **{"auth": GOOD_SECRET}), "0.0.0.0")  # a real secret


def test_short_secret_refused() -> None:
    with pytest.raises(ValidationError, match="at least 16"):
        Settings(env="production", auth={"secret_key": "short"})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_database_url_normalized(given: str, expected: str) -> None:
    assert Settings(env="dev", database={"url": given}).database.url == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "malformed database URL"),
        ("sqlite:///x.db", "PostgreSQL only"),
        ("mysql://u@h/db", "PostgreSQL only"),
        ("postgresql://u@h", "names no database"),
    ],
)
def test_bad_database_urls(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(env="dev", database={"url": url})


def test_environment_with_nested_and_flat_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPCGATE_ENV", "production")
    monkeypatch.setenv("HPCGATE_SECRET_KEY", "y" * 40)
    monkeypatch.setenv("HPCGATE_DATABASE_URL", "postgres://a@b/c")
    monkeypatch.setenv("HPCGATE_SCHEDULER__POLL_INTERVAL_S", "2.5")
    s = Settings()
    assert s.auth.secret_key == "y" * 40
    assert s.database.url == "postgresql+psycopg://a@b/c"
    assert s.scheduler.poll_interval_s == 2.5


def test_nested_env_beats_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "hpcgate.yaml"
    cfg.write_text("env: dev\nsmtp:\n  host: mail.example.org\n  port: 2525\nport: 9000\n")
    monkeypatch.setenv("HPCGATE_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("HPCGATE_SMTP__PORT", "2626")
    s = Settings()
    assert s.smtp.host == "mail.example.org"
    assert s.smtp.port == 2626
    assert s.port == 9000


def test_invalid_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("- a list\n")
    monkeypatch.setenv("HPCGATE_CONFIG_FILE", str(cfg))
    with pytest.raises(ValueError, match="must hold a mapping"):
        Settings(env="dev")


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(env="dev", databse={"url": "x"})  # type: ignore[call-arg]


def test_out_of_range_values() -> None:
    with pytest.raises(ValidationError):
        Settings(env="dev", port=0)
    with pytest.raises(ValidationError):
        Settings(env="dev", scheduler={"poll_interval_s": 0})
