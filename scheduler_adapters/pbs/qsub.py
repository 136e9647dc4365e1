"""``qsub`` output: the new job's id, the implementation behind ``qsub --version``,
and whether a command refused an option (pure)."""

from __future__ import annotations

import re

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.pbs.commands import Flavor
from scheduler_adapters.pbs.values import parse_job_id
from scheduler_adapters.types import CommandResult, JobId


def parse_qsub(result: CommandResult | str) -> JobId:
    """qsub prints the id on its last line (``1234.srv``, ``123[].srv``, wrappers: ``55``)."""
    text = result.stdout if isinstance(result, CommandResult) else result
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise OutputParseError("qsub printed no job id", raw=text)
    try:
        return parse_job_id(lines[-1])
    except OutputParseError as exc:
        raise OutputParseError("qsub output does not end with a job id", raw=text) from exc


_PBSPRO_VERSION_RE = re.compile(r"pbs_version\s*=\s*(\S+)")
_TORQUE_VERSION_RE = re.compile(r"^\s*Version:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


def parse_qsub_version(result: CommandResult) -> tuple[Flavor, bool, str | None]:
    """``qsub --version`` -> (flavor, is the Slurm wrapper, version).

    PBS Pro / OpenPBS: ``pbs_version = 2022.1.1``; Torque: ``Version: 6.1.2``;
    slurm-wlm-torque: ``Unknown option: version`` and exit status 2 (captured).
    """
    text = f"{result.stdout}\n{result.stderr}"
    m = _PBSPRO_VERSION_RE.search(text)
    if m is not None:
        return "pbspro", False, m.group(1)
    m = _TORQUE_VERSION_RE.search(text)
    if m is not None:
        return "torque", False, m.group(1)
    if "Unknown option: version" in text:
        return "torque", True, None
    raise OutputParseError("qsub --version names no known PBS implementation", raw=text)


def is_unknown_option(result: CommandResult) -> bool:
    """True when a command refused an option (Torque getopt, Perl Getopt in the wrappers)."""
    text = f"{result.stderr}\n{result.stdout}"
    return bool(re.search(r"unknown option|invalid option|illegal option", text, re.IGNORECASE))
