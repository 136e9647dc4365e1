"""A dispatcher's local copies of binary input blobs, one verified file per sha256.

Work items carry blob references, not bytes. The worker fetches a blob from PostgreSQL, the
agent from its API; either way it lands here once, is checked against its sha256 before it
is used, and is then staged into every step and array task that needs it without being
fetched again. Staging reads the cached file in chunks, so no blob is ever held in memory.
Files untouched for ``keep_days`` are pruned by the dispatcher's periodic work.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from scheduler_adapters.errors import SchedulerError

log = logging.getLogger(__name__)

Fetch = Callable[[str], Iterable[bytes]]
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class BlobCache:
    def __init__(self, directory: Path, fetch: Fetch, *, keep_days: float = 7.0) -> None:
        self.directory = Path(directory)
        self.fetch = fetch
        self.keep_days = keep_days

    def path(self, sha256: str) -> Path:
        """The local file holding the blob, fetched and verified first if it is not cached.

        A failed or corrupt fetch raises a transient ``SchedulerError`` (the submission is
        deferred and retried); a blob the source does not have is a permanent one.
        """
        if not _SHA256_RE.match(sha256):
            raise SchedulerError(f"not a sha256: {sha256[:80]!r}", transient=False)
        target = self.directory / sha256[:2] / sha256
        if target.is_file():
            os.utime(target)  # recently used: kept by prune()
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{sha256[:16]}.", suffix=".part")
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in self.fetch(sha256):
                    digest.update(chunk)
                    fh.write(chunk)
            if digest.hexdigest() != sha256:
                got = digest.hexdigest()[:12]
                raise SchedulerError(
                    f"input blob {sha256[:12]}… arrived corrupt (sha256 {got}…)", transient=True
                )
            os.replace(tmp, target)
        except LookupError as exc:
            raise SchedulerError(f"input blob {sha256[:12]}…: {exc}", transient=False) from exc
        finally:
            Path(tmp).unlink(missing_ok=True)
        log.info("cached input blob %s", sha256[:12])
        return target

    def prune(self) -> int:
        """Remove cached blobs not used for ``keep_days``; returns how many were removed."""
        if not self.directory.is_dir():
            return 0
        cutoff = time.time() - self.keep_days * 86400
        removed = 0
        for sub in self.directory.iterdir():
            if not sub.is_dir():
                continue
            for entry in sub.iterdir():
                try:
                    if entry.stat().st_mtime < cutoff:
                        entry.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed
