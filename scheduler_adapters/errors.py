"""Errors raised by adapters and runners.

``transient`` is the one flag callers act on: a transient error (socket timeout,
slurmctld restarting) means *the cluster* is unhealthy and the call may be retried;
a permanent one (invalid partition, bad account) means the request itself is wrong.
A poll that fails never marks jobs failed.
"""

from __future__ import annotations

from scheduler_adapters.types import CommandResult


def _trim(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "…"


class SchedulerError(Exception):
    def __init__(
        self, message: str, *, result: CommandResult | None = None, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.result = result
        self.transient = transient


class CommandFailed(SchedulerError):
    @classmethod
    def from_result(cls, result: CommandResult, *, transient: bool = False) -> CommandFailed:
        msg = (
            f"command {' '.join(result.argv)!r} exited with {result.returncode}: "
            f"{_trim(result.stderr) or _trim(result.stdout) or '(no output)'}"
        )
        return cls(msg, result=result, transient=transient)


class OutputParseError(SchedulerError):
    def __init__(self, message: str, *, raw: str) -> None:
        super().__init__(f"{message}: {_trim(raw, 300)!r}")
        self.raw = raw


class JobNotFound(SchedulerError):
    pass


class UnsupportedFeature(SchedulerError):
    pass


class RunnerError(SchedulerError):
    """The runner could not execute anything (connection refused, host hung)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


class UnsafePath(SchedulerError):
    """A path outside the scratch root was about to be written or deleted."""


class RenderError(SchedulerError, ValueError):
    """A job script could not be rendered: unknown template variable, missing
    template, or a value that is unsafe on a directive line. Always permanent
    (the request is wrong, not the cluster)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)
