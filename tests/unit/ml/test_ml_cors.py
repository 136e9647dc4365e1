"""The portal (another origin) may call the ML-API only when its origin is configured."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hpcgate.settings import Settings
from ml.api import create_ml_app
from ml.settings import MlApiConfig


def _app(origins: list[str]) -> TestClient:
    settings = Settings(env="test", auth={"secret_key": "test-secret-key-0123456789abcdef"})
    config = MlApiConfig(cors_origins=origins, docker_host="unix:///nonexistent.sock")
    return TestClient(create_ml_app(settings, config))


def test_configured_origin_gets_cors_headers() -> None:
    client = _app(["https://portal.example.org"])
    r = client.options(
        "/models",
        headers={
            "Origin": "https://portal.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert r.headers.get("access-control-allow-origin") == "https://portal.example.org"


def test_unconfigured_origin_gets_none() -> None:
    client = _app([])
    r = client.options(
        "/models",
        headers={"Origin": "https://evil.example.org", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers
