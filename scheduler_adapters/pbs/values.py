"""Small PBS values: job ids, durations, sizes and times (pure; ``ValueError`` or
:class:`OutputParseError` on text that is not one).

:func:`optional` reads an *optional* attribute: one that does not parse becomes
``None`` with a warning, because one odd attribute must not stop a poll of every job.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.pbs.commands import NATIVE_ID_RE
from scheduler_adapters.types import JobId

log = logging.getLogger("scheduler_adapters.pbs")
_T = TypeVar("_T")

_DURATION_RE = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)$")
_SECONDS_RE = re.compile(r"^\d+(?:\.\d+)?$")
_SIZE_RE = re.compile(r"^(?P<n>\d+)(?P<unit>[kmgtp]?b)?$", re.IGNORECASE)
_SIZE_FACTORS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}
_TIME_FORMAT = "%a %b %d %H:%M:%S %Y"


def parse_job_id(text: str) -> JobId:
    """``123.srv`` -> ``JobId("123.srv")``; ``123[4].srv`` -> ``JobId("123[].srv", 4)``."""
    text = text.strip()
    m = NATIVE_ID_RE.match(text)
    if m is None:
        raise OutputParseError("not a PBS job id", raw=text)
    index, server = m["index"], m["server"] or ""
    if index:
        return JobId(f"{m['seq']}[]{server}", int(index))
    return JobId(text)


def job_key(job_id: JobId) -> tuple[str, int | None, bool]:
    """Identity of a job regardless of how the server name is spelled.

    qsub may print ``12.pbs01`` while qstat says ``12.pbs01.example.org``;
    matching on (sequence number, task, is-array) makes both the same job.
    """
    m = NATIVE_ID_RE.match(job_id.value)
    if m is None:
        return (job_id.value, job_id.task, False)
    return (m["seq"], job_id.task, m["index"] is not None)


def parse_duration(text: str) -> float:
    """``HHH:MM:SS[.f]``, ``MM:SS`` or plain seconds -> seconds (ValueError otherwise).

    PBS prints hours beyond 99 (``4090:56:03`` cput in the aiida capture).
    """
    text = text.strip()
    m = _DURATION_RE.match(text)
    if m is not None:
        hours = int(m["h"]) if m["h"] is not None else 0
        return hours * 3600 + int(m["m"]) * 60 + float(m["s"])
    if _SECONDS_RE.match(text):
        return float(text)
    raise ValueError(f"not a PBS duration: {text!r}")


def parse_size_kb(text: str) -> int:
    """A PBS size (``13378420kb``, ``8gb``, ``0b``, ``524288000``) in KiB, rounded down.

    PBS sizes without a unit are bytes. Word units (``kw``) are refused.
    """
    m = _SIZE_RE.match(text.strip())
    if m is None:
        raise ValueError(f"not a PBS size: {text!r}")
    unit = (m["unit"] or "b").lower()
    return int(m["n"]) * _SIZE_FACTORS[unit] // 1024


def parse_pbs_time(text: str) -> datetime:
    """``Tue Apr  9 15:01:47 2013`` (server local time, naive) or epoch seconds (UTC)."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return datetime.fromtimestamp(int(text), tz=UTC)
    return datetime.strptime(text, _TIME_FORMAT)  # PBS prints server local time


def optional(
    raw: str | None, convert: Callable[[str], _T], owner: str | None, key: str
) -> _T | None:
    """``convert(raw)``, or None when absent or unreadable (logged for job ``owner``)."""
    if raw is None or raw == "":
        return None
    try:
        return convert(raw)
    except (ValueError, OverflowError):
        log.warning("job %s: cannot read %s=%r, ignoring it", owner, key, raw)
        return None
