"""A remote directory's entries, streamed over one long-lived SSH channel (issue 16).

The end spool (``<scratch_root>/hpcgate/.ended``) is where every job announces its end. On
an SSH cluster, listing it from here would be one remote command per look; instead one
exec channel runs a small POSIX shell loop on the login node that lists the directory a
few times a second and prints a line only when the listing changed (and a heartbeat line
every ``heartbeat_s``, so a silent channel is noticed and replaced). Only names made of
digits and ``_`` (job ids, array tasks) are ever printed: a forged name cannot reach us.

The channel shares the runner's connection (no extra login, no command slot). When the
channel or the connection dies, the stream reconnects with a growing back-off and the
first line after that is a full listing, so nothing announced meanwhile is missed (the
entries stay until they are removed). A stream that is not connected reports ``None``
and the caller's periodic harvest carries on as the safety net.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from pathlib import PurePosixPath

from scheduler_adapters.errors import RunnerError
from scheduler_adapters.runners.ssh_connection import Dropped, Hung
from scheduler_adapters.runners.ssh_exec import RemoteExec, build_command, split_pid

log = logging.getLogger("scheduler_adapters.runners.ssh")

# $1 directory, $2 seconds between looks, $3 looks between heartbeats. The directory is
# created (mode 1733, like EndSpool.ensure) once its parent exists; entries are listed by
# glob, never by parsing ls, and filtered to job-id characters.
_LOOP = r"""
d=$1; every=$2; beat=$3; prev=-; n=0
while :; do
  if [ ! -d "$d" ] && [ -d "${d%/*}" ]; then mkdir -m 1733 -- "$d" 2>/dev/null; fi
  cur=$(cd -- "$d" 2>/dev/null && for f in *; do
    case $f in *[!0-9_]*) ;; *) printf '%s ' "$f" ;; esac
  done)
  n=$((n + 1))
  if [ "$cur" != "$prev" ] || [ "$n" -ge "$beat" ]; then
    printf 'L %s\n' "$cur" || exit 0
    prev=$cur; n=0
  fi
  sleep "$every"
done
"""


class RemoteDirStream:
    """Follows ``path``'s entries; ``names()`` is the latest listing (``None``: not connected)."""

    def __init__(
        self, remote: RemoteExec, path: PurePosixPath, *, every_s: float = 0.2,
        heartbeat_s: float = 10.0,
    ) -> None:
        self.remote = remote
        self.path = path
        self.every_s = every_s
        self.heartbeat_s = heartbeat_s
        self.connects = 0  # channels opened (tests read it)
        self._names: frozenset[str] | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ caller side
    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._main, name=f"ssh-dir-stream {self.path}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def names(self) -> frozenset[str] | None:
        return self._names

    def wait_change(self, timeout: float) -> bool:
        """Block until a new listing arrives (True) or ``timeout`` passes (False)."""
        with self._changed:
            seen = self._names
            self._changed.wait_for(lambda: self._names is not seen or self._stop.is_set(),
                                   timeout)
            return self._names is not seen

    # ------------------------------------------------------------------ stream thread
    def _main(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if self._follow():
                    backoff = 0.5  # it worked for a while: retry soon
            except (RunnerError, Dropped, Hung, OSError, EOFError) as exc:
                log.info("end stream %s on %s: %s; reconnecting", self.path,
                         self.remote.target.label, exc)
            except Exception:
                log.exception("end stream %s failed unexpectedly", self.path)
            self._set(None)
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, 30.0)

    def _command(self) -> bytes:
        beat = max(1, round(self.heartbeat_s / self.every_s))
        argv = ["sh", "-c", _LOOP, "hpcgate-end-stream", str(self.path),
                f"{self.every_s:g}", str(beat)]
        return build_command(argv).encode()

    def _follow(self) -> bool:
        """One channel's life; True when it delivered at least one listing."""
        deadline = time.monotonic() + self.remote.target.connect_timeout
        _conn, chan = self.remote.start(self._command(), ("sh",), deadline)
        self.connects += 1
        got_any = False
        buf = b""
        silent_limit = self.heartbeat_s * 3
        last = time.monotonic()
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([chan], [], [], 0.5)
                if ready:
                    data = chan.recv(65536)
                    if not data:
                        return got_any
                    buf += data
                    last = time.monotonic()
                    buf, got = self._lines(buf)
                    got_any = got_any or got
                elif chan.closed or chan.exit_status_ready():
                    return got_any
                elif time.monotonic() - last > silent_limit:
                    raise RunnerError(f"no heartbeat within {silent_limit:.0f}s")
            return got_any
        finally:
            chan.close()

    def _lines(self, buf: bytes) -> tuple[bytes, bool]:
        got = False
        if b"__hpcgate_pid=" in buf:
            _, buf = split_pid(buf)
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.startswith(b"L "):
                names = line[2:].decode("ascii", errors="replace").split()
                self._set(frozenset(n for n in names if n.replace("_", "").isdigit()))
                got = True
        return buf, got

    def _set(self, names: frozenset[str] | None) -> None:
        with self._changed:
            if names != self._names or names is None:
                self._names = names
            self._changed.notify_all()
