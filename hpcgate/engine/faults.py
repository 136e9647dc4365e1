"""Crash points for the kill -9 tests: ``HPCGATE_FAULT_CRASH_AT=<point>[:<n>]``.

When the named point is reached for the n-th time (default 1) the process SIGKILLs itself —
no cleanup, no ``finally`` — exactly like a power cut. Unset in production, the check is one
dictionary lookup. Points: ``after_mark_submitting``, ``after_submit`` (sbatch returned, id
not yet recorded), ``after_record`` (between steps), ``before_release`` (all ids recorded,
chain head still held).
"""

from __future__ import annotations

import os
import signal

_ENV = "HPCGATE_FAULT_CRASH_AT"
_seen: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get(_ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
