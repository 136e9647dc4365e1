"""Per-user login storage: ``~/.config/hpcgate/credentials.json`` (mode 0600), one entry per
server URL, plus the URL used last.

Why a lock: the API rotates refresh tokens, and presenting an already-rotated one revokes
the whole login (theft detection). Two commands of the same user refreshing at once would
do exactly that, so a refresh happens under an exclusive ``flock`` and first re-reads the
file: whoever comes second finds the token the first one stored and uses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hpcgate.client.errors import ClientError

ENV_URL = "HPCGATE_URL"
ENV_TOKEN = "HPCGATE_TOKEN"  # noqa: S105 - the variable's name
DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Login:
    """What one server's login keeps: the access token and the refresh cookie's value."""

    url: str
    access_token: str
    expires_at: float  # epoch seconds
    refresh_token: str | None = None
    email: str | None = None

    def expires_soon(self, margin_s: float = 30.0) -> bool:
        return time.time() + margin_s >= self.expires_at


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ClientError(f"server URL {url!r} must start with http:// or https://")
    return url


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hpcgate" / "credentials.json"


class CredentialStore:
    """The JSON file; every write is atomic (temp file + rename) and never group-readable."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def _read(self) -> dict[str, Any]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {"current": None, "servers": {}}
        if st.st_mode & 0o077:
            # Someone loosened it (an editor, a copy): tokens are secrets, tighten it.
            os.chmod(self.path, 0o600)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot read {self.path}: {exc}; log in again") from None
        if not isinstance(data, dict) or not isinstance(data.get("servers"), dict):
            raise ClientError(f"{self.path} is not a credentials file; delete it and log in")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp: mode 0600
                json.dump(data, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes of this user (a refresh must not run twice)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def current_url(self) -> str | None:
        value = self._read().get("current")
        return str(value) if value else None

    def get(self, url: str) -> Login | None:
        key = normalize_url(url)
        entry = self._read()["servers"].get(key)
        if not isinstance(entry, dict):
            return None
        try:
            return Login(**entry)
        except TypeError:
            return None

    def put(self, login: Login) -> None:
        data = self._read()
        data["servers"][login.url] = asdict(login)
        data["current"] = login.url
        self._write(data)

    def remove(self, url: str) -> bool:
        data = self._read()
        gone = data["servers"].pop(normalize_url(url), None) is not None
        if data.get("current") == normalize_url(url):
            data["current"] = None
        self._write(data)
        return gone
