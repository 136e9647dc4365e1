"""Pure pieces: API key format/hashing, cluster field rules, log levels, mail backoff."""

from __future__ import annotations

import pytest

from hpcgate.auth.api_keys import generate_key, hash_secret, parse_key, secret_matches
from hpcgate.auth.refresh import hash_token
from hpcgate.logging import redact
from hpcgate.services.clusters import (
    check_host,
    check_scheduler,
    check_scratch_root,
    known_schedulers,
)
from hpcgate.services.logs import level_name, levels_at_least
from hpcgate.services.notify import admits


def test_generated_keys_parse_and_verify() -> None:
    key = generate_key()
    parsed = parse_key(key.raw)
    assert parsed is not None
    prefix, secret = parsed
    assert prefix == key.prefix
    assert len(prefix) == 8
    assert len(secret) >= 43  # 32 random bytes
    assert key.key_hash == hash_secret(secret)
    assert secret_matches(secret, key.key_hash)
    assert not secret_matches(secret + "x", key.key_hash)
    assert secret not in key.key_hash
    assert generate_key().raw != key.raw


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "hpcg_",
        "hpcg_abc_def",
        "hpcg_ABCDEFGH_" + "a" * 43,
        "xxxx_abcdefgh_" + "a" * 43,
        "hpcg_abcdefgh_" + "a" * 10,
        "hpcg_abcdefgh_" + "a" * 43 + "!",
        "x" * 500,
    ],
)
def test_malformed_keys_do_not_parse(raw: str | None) -> None:
    assert parse_key(raw) is None


def test_keys_and_tokens_are_redacted_in_logs() -> None:
    key = generate_key().raw
    text = redact(f"agent connected with {key}")
    assert key not in text
    assert key.split("_")[1] in text  # the prefix stays, to know which key it was


def test_refresh_token_hash_is_sha256_hex() -> None:
    assert len(hash_token("abc")) == 64
    assert hash_token("abc") != hash_token("abd")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("login.HPC.example.org", "login.hpc.example.org"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("node-01", "node-01"),
        ("login.example.org.", "login.example.org."),
    ],
)
def test_good_hosts(value: str, expected: str) -> None:
    assert check_host(value) == expected


@pytest.mark.parametrize(
    "value",
    ["http://x", "a b", "-x.org", "x-.org", "a..b", "x" * 64 + ".org", "host:22", "", "é.org"],
)
def test_bad_hosts(value: str) -> None:
    with pytest.raises(ValueError):
        check_host(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/scratch/x/", "/scratch/x"), ("/a//b/./c", "/a/b/c"), ("//scratch", "/scratch")],
)
def test_scratch_root_is_normalised(value: str, expected: str) -> None:
    assert check_scratch_root(value) == expected


@pytest.mark.parametrize("value", ["/", "//", "relative", "/a/../b", "/a/\nb", "/a\x00b", "~/x"])
def test_bad_scratch_roots(value: str) -> None:
    with pytest.raises(ValueError):
        check_scratch_root(value)


def test_schedulers_come_from_the_registry() -> None:
    assert {"slurm", "pbs", "local"} <= set(known_schedulers())
    assert check_scheduler("pbs") == "pbs"
    with pytest.raises(ValueError, match="known: "):
        check_scheduler("lsf")


def test_levels() -> None:
    assert levels_at_least("warning") == ["warning", "error", "critical"]
    assert level_name(30) == "warning"
    assert level_name(5) == "debug"
    assert level_name(60) == "critical"


@pytest.mark.parametrize(
    ("user_level", "event_level", "expected"),
    [
        ("info", "info", True),
        ("info", "error", True),
        ("error", "error", True),
        ("error", "info", False),
    ],
)
def test_notify_level_admits(user_level: str, event_level: str, expected: bool) -> None:
    assert admits(user_level, event_level) is expected
