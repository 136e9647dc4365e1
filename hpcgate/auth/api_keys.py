"""API key format and hashing (pure; the use-cases live in ``hpcgate/services/api_keys.py``).

A key reads ``hpcg_<prefix>_<secret>``:

- ``prefix``: 8 characters of ``[a-z0-9]``, stored in clear and unique, so a key is found
  with one indexed lookup instead of hashing against every stored key;
- ``secret``: 32 random bytes (256 bits), URL-safe base64.

Only ``sha256(secret)`` is stored. A slow password hash (argon2) protects *low-entropy*
secrets against offline guessing; a 256-bit random secret cannot be guessed, so a fast hash
is as safe and keeps per-request authentication cheap (agents call often). Comparison is
constant-time. The full key is shown once, at creation or rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PREFIX = "hpcg"
PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
PREFIX_LENGTH = 8
_KEY_RE = re.compile(r"^hpcg_([a-z0-9]{8})_([A-Za-z0-9_-]{32,128})$")


@dataclass(frozen=True)
class GeneratedKey:
    raw: str  # the whole key, to show once
    prefix: str
    key_hash: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def generate_key() -> GeneratedKey:
    prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = secrets.token_urlsafe(32)
    return GeneratedKey(
        raw=f"{KEY_PREFIX}_{prefix}_{secret}", prefix=prefix, key_hash=hash_secret(secret)
    )


def parse_key(raw: str | None) -> tuple[str, str] | None:
    """``(prefix, secret)`` of a well-formed key, else ``None``."""
    if not raw or len(raw) > 200:
        return None
    match = _KEY_RE.match(raw.strip())
    if match is None:
        return None
    return match.group(1), match.group(2)


def secret_matches(secret: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), key_hash)


def looks_like_api_key(raw: str | None) -> bool:
    return bool(raw) and str(raw).startswith(f"{KEY_PREFIX}_")
