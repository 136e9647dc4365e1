"""Access JWTs: what ``verify_access_token`` (API and ML-API) accepts and refuses."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from hpcgate.auth.jwt import issue_access_token, verify_access_token
from hpcgate.domain.access import Role
from hpcgate.errors import Unauthorized
from hpcgate.settings import Settings

SECRET = "unit-test-secret-key-0123456789abcdef"


@pytest.fixture
def cfg() -> Settings:
    return Settings(env="test", auth={"secret_key": SECRET})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(cfg: Settings, **over: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": cfg.auth.issuer,
        "sub": "42",
        "role": "admin",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": "abc",
        "typ": "access",
    }
    claims.update(over)
    return claims


def test_round_trip(cfg: Settings) -> None:
    issued = issue_access_token(7, Role.MODERATOR, cfg)
    claims = verify_access_token(issued.token, cfg)
    assert claims.user_id == 7
    assert claims.role is Role.MODERATOR
    assert claims.jti == issued.claims.jti
    assert 0 < issued.expires_in <= cfg.auth.access_token_minutes * 60
    header = jwt.get_unverified_header(issued.token)
    assert header["alg"] == "HS256"
    payload = jwt.decode(issued.token, options={"verify_signature": False})
    assert payload["typ"] == "access"
    assert payload["iss"] == "hpcgate"
    assert payload["sub"] == "7"


def test_alg_none_is_refused(cfg: Settings) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = _b64(json.dumps(_claims(cfg)).encode())
    for token in (f"{header}.{body}.", f"{header}.{body}"):
        with pytest.raises(Unauthorized):
            verify_access_token(token, cfg)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_other_hmac_algorithm_with_the_right_key_is_refused(cfg: Settings) -> None:
    token = jwt.encode(_claims(cfg), SECRET, algorithm="HS512")
    with pytest.raises(Unauthorized):
        verify_access_token(token, cfg)


def test_wrong_key_is_refused(cfg: Settings) -> None:
    token = jwt.encode(_claims(cfg), "another-secret-key-0123456789abcdef", algorithm="HS256")
    with pytest.raises(Unauthorized, match="invalid"):
        verify_access_token(token, cfg)


def test_expired_token_is_refused(cfg: Settings) -> None:
    issued = issue_access_token(
        1, Role.USER, cfg, now=datetime.now(UTC) - timedelta(hours=1), lifetime=timedelta(minutes=5)
    )
    with pytest.raises(Unauthorized, match="expired"):
        verify_access_token(issued.token, cfg)


def test_expiry_leeway_is_small(cfg: Settings) -> None:
    issued = issue_access_token(
        1,
        Role.USER,
        cfg,
        now=datetime.now(UTC) - timedelta(seconds=75),
        lifetime=timedelta(minutes=1),
    )
    with pytest.raises(Unauthorized):
        verify_access_token(issued.token, cfg)


def test_tampered_payload_is_refused(cfg: Settings) -> None:
    token = issue_access_token(5, Role.USER, cfg).token
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"  # privilege escalation attempt
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(Unauthorized):
        verify_access_token(forged, cfg)
    claims["role"], claims["sub"] = "user", "1"
    with pytest.raises(Unauthorized):
        verify_access_token(f"{header}.{_b64(json.dumps(claims).encode())}.{signature}", cfg)


def test_tampered_header_is_refused(cfg: Settings) -> None:
    token = issue_access_token(5, Role.USER, cfg).token
    _, payload, signature = token.split(".")
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "x"}).encode())
    with pytest.raises(Unauthorized):
        verify_access_token(f"{header}.{payload}.{signature}", cfg)


@pytest.mark.parametrize(
    "over",
    [
        {"typ": "refresh"},
        {"iss": "someone-else"},
        {"role": "root"},
        {"sub": "not-a-number"},
        {"sub": "0"},
    ],
)
def test_wrong_claims_are_refused(cfg: Settings, over: dict[str, object]) -> None:
    token = jwt.encode(_claims(cfg, **over), SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        verify_access_token(token, cfg)


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "jti", "typ", "role", "iss"])
def test_missing_claims_are_refused(cfg: Settings, missing: str) -> None:
    claims = _claims(cfg)
    del claims[missing]
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        verify_access_token(token, cfg)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x", "x" * 5000, "hpcg_x_y"])
def test_garbage_is_refused(cfg: Settings, garbage: str) -> None:
    with pytest.raises(Unauthorized):
        verify_access_token(garbage, cfg)


def test_another_deployment_with_another_secret_refuses(cfg: Settings) -> None:
    token = issue_access_token(3, Role.USER, cfg).token
    other = Settings(env="test", auth={"secret_key": "z" * 40})
    with pytest.raises(Unauthorized):
        verify_access_token(token, other)
