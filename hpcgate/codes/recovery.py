"""The recovery ladder (issue 17): what to change when a step ends unconverged, per code.

Pure: a verdict, the step's attempt history and its current main input in, the next
attempt's changes (or a reason to give up) out. The database side
(``hpcgate/services/recovery.py``) records the attempt and resubmits the step.

A code offers :class:`Remedy` rungs (``codes/<code>/recovery.py``) and default ladders, one
per verdict it can recover from. Every retry also *continues* the failed attempt: it
inherits the files named by :attr:`CodeRecovery.inherit` from the failed attempt's
directory and applies :attr:`CodeRecovery.restart` (SIESTA: ``DM.UseSaveDM``; QE:
``startingpot='file'``). The walltime rung (``longer_walltime``) is shared by every code:
the job's ``walltime_s`` doubled, capped at the queue's limit. A code that can stop itself
cleanly before its walltime offers :attr:`CodeRecovery.checkpoint` (QE: ``max_seconds``):
applied to the first attempt's input at creation (:func:`checkpointed`) and again, for the
new walltime, by every ``longer_walltime`` rung, so the next attempt has a restart point.

A calculation's ``configuration.recovery`` chooses: ``false`` (never retry),
``{"max_attempts": N, "ladder": [...] | {verdict: [...]} | false}``; a plain list is the
``scf_not_converged`` ladder. A code without a ladder (generic) never retries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpcgate.errors import InvalidInput

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "LONGER_WALLTIME",
    "MAX_ATTEMPTS_LIMIT",
    "AttemptRecord",
    "Change",
    "CodeRecovery",
    "GiveUp",
    "Policy",
    "Remedy",
    "Retry",
    "checkpointed",
    "next_attempt",
    "parse_policy",
]

DEFAULT_MAX_ATTEMPTS = 4
MAX_ATTEMPTS_LIMIT = 10
LONGER_WALLTIME = "longer_walltime"
RECOVERABLE = ("scf_not_converged", "geometry_not_converged", "incomplete")

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Change:
    """One setting changed for the next attempt (``walltime_s`` is a job resource)."""

    key: str
    old: Scalar | None  # None: the code's default was in effect
    new: Scalar

    def describe(self) -> str:
        old = "default" if self.old is None else str(self.old)
        return f"{self.key} {old} \u2192 {self.new}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "old": self.old, "new": self.new}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(str(data["key"]), data.get("old"), data["new"])


@dataclass(frozen=True)
class Remedy:
    """One rung: from the current main input text, the changes it makes."""

    name: str
    verdicts: frozenset[str]
    changes: Callable[[str], list[Change]]


@dataclass(frozen=True)
class CodeRecovery:
    """What a code plugin offers the ladder."""

    remedies: Mapping[str, Remedy]
    ladders: Mapping[str, tuple[str, ...]]  # verdict -> default rung names
    restart: Callable[[str, str], list[Change]]  # (verdict, input text) -> continuation
    inherit: Callable[[str], tuple[str, ...]]  # verdict -> files taken from the failed attempt
    apply: Callable[[str, Sequence[Change]], str]  # render input changes into the text
    # (input text, walltime_s, first attempt) -> the changes that make the program stop
    # cleanly, with its restart files written, before the scheduler kills it; None: cannot
    checkpoint: Callable[[str, int, bool], list[Change]] | None = None

    def known(self, verdict: str) -> frozenset[str]:
        names = {n for n, r in self.remedies.items() if verdict in r.verdicts}
        return frozenset(names | ({LONGER_WALLTIME} if verdict == "incomplete" else set()))


@dataclass(frozen=True)
class AttemptRecord:
    """An earlier attempt, as far as the ladder is concerned."""

    attempt: int
    rung: str | None  # the rung that made it (None: the first attempt)
    trigger: str | None  # the verdict it was retried for


@dataclass(frozen=True)
class Policy:
    enabled: bool = True
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ladders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # overrides


@dataclass(frozen=True)
class Retry:
    attempt: int
    verdict: str
    rung: str
    input_changes: tuple[Change, ...]
    walltime_s: int | None  # the new walltime, when the rung changes it
    inherit: tuple[str, ...]
    walltime_was: int | None = None  # the walltime it replaces (None: the queue's default)

    @property
    def changes(self) -> tuple[Change, ...]:
        return self.input_changes


@dataclass(frozen=True)
class GiveUp:
    reason: str


def next_attempt(
    recovery: CodeRecovery | None,
    policy: Policy,
    verdict: str | None,
    history: Sequence[AttemptRecord],
    text: str,
    *,
    walltime_s: int | None = None,
    walltime_cap: int | None = None,
) -> Retry | GiveUp:
    """The next attempt after one that ended with ``verdict``, or why there is none."""
    if recovery is None or not policy.enabled:
        return GiveUp("no recovery ladder for this calculation")
    if verdict not in RECOVERABLE:
        return GiveUp(f"verdict {verdict or 'unknown'!r} is not recoverable")
    ladder = policy.ladders.get(verdict, recovery.ladders.get(verdict, ()))
    current = max((h.attempt for h in history), default=1)
    if current >= policy.max_attempts:
        return GiveUp(f"{verdict} after {current} attempt(s) (max_attempts {policy.max_attempts})")
    used = sum(1 for h in history if h.trigger == verdict and h.rung is not None)
    if used >= len(ladder):
        return GiveUp(f"{verdict}: the ladder ({', '.join(ladder) or 'empty'}) is exhausted")
    rung = ladder[used]
    changes = list(recovery.restart(verdict, text))
    new_walltime = None
    if rung == LONGER_WALLTIME:
        new_walltime = _longer_walltime(walltime_s, walltime_cap)
        if new_walltime is None:
            return GiveUp(f"{verdict}: the walltime cannot grow (limit {walltime_cap} s)")
        changes.append(Change("walltime_s", walltime_s, new_walltime))
        if recovery.checkpoint is not None:
            changes += recovery.checkpoint(text, new_walltime, False)
    else:
        changes += recovery.remedies[rung].changes(text)
    return Retry(
        attempt=current + 1,
        verdict=verdict,
        rung=rung,
        input_changes=tuple(c for c in changes if c.key != "walltime_s"),
        walltime_s=new_walltime,
        inherit=recovery.inherit(verdict),
        walltime_was=walltime_s if new_walltime is not None else None,
    )


def all_changes(retry: Retry) -> list[Change]:
    """Input changes and the walltime, in the order they are recorded."""
    out = list(retry.input_changes)
    if retry.walltime_s is not None:
        out.append(Change("walltime_s", retry.walltime_was, retry.walltime_s))
    return out


def checkpointed(
    recovery: CodeRecovery | None, files: Mapping[str, str], main: str, walltime_s: int | None
) -> dict[str, str]:
    """The first attempt's files with the code's checkpoint for ``walltime_s`` in the main
    input (an array's per-task copies too); unchanged without a checkpoint or a walltime."""
    out = dict(files)
    if recovery is None or recovery.checkpoint is None or not walltime_s:
        return out
    for path, text in files.items():
        if path == main or path.endswith("/" + main):
            out[path] = recovery.apply(text, recovery.checkpoint(text, walltime_s, True))
    return out


def _longer_walltime(current: int | None, cap: int | None) -> int | None:
    if current is None:
        return cap
    new = current * 2 if cap is None else min(current * 2, cap)
    return new if new > current else None


# ------------------------------------------------------------------- configuration checks


def parse_policy(raw: Any, recovery: CodeRecovery | None) -> Policy:
    """``configuration.recovery`` (None: the code's defaults); InvalidInput (422) if bad."""
    if raw is None:
        return Policy(enabled=recovery is not None)
    if raw is False:
        return Policy(enabled=False)
    if not isinstance(raw, Mapping):
        raise InvalidInput("'recovery' must be false or an object {max_attempts, ladder}")
    unknown = set(raw) - {"max_attempts", "ladder"}
    if unknown:
        raise InvalidInput(f"'recovery' has unknown key(s): {', '.join(sorted(unknown))}")
    max_attempts = raw.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if (
        not isinstance(max_attempts, int)
        or isinstance(max_attempts, bool)
        or not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT
    ):
        raise InvalidInput(
            f"'recovery.max_attempts' must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}"
        )
    ladder = raw.get("ladder")
    if ladder is False or (recovery is None and ladder is None):
        return Policy(enabled=False, max_attempts=max_attempts)
    if recovery is None:
        raise InvalidInput("this code has no recovery ladder: 'recovery.ladder' must be false")
    ladders = _parse_ladders(ladder, recovery)
    return Policy(enabled=True, max_attempts=max_attempts, ladders=ladders)


def _parse_ladders(raw: Any, recovery: CodeRecovery) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if isinstance(raw, list):
        raw = {"scf_not_converged": raw}
    if not isinstance(raw, Mapping):
        raise InvalidInput(
            "'recovery.ladder' must be false, a list of rungs (scf_not_converged) "
            "or an object {verdict: [rungs]}"
        )
    out: dict[str, tuple[str, ...]] = {}
    for verdict, rungs in raw.items():
        if verdict not in RECOVERABLE:
            raise InvalidInput(
                f"'recovery.ladder': {verdict!r} is not a recoverable verdict "
                f"({', '.join(RECOVERABLE)})"
            )
        if not isinstance(rungs, list) or not all(isinstance(r, str) for r in rungs):
            raise InvalidInput(f"'recovery.ladder.{verdict}' must be a list of rung names")
        known = recovery.known(verdict)
        bad = [r for r in rungs if r not in known]
        if bad:
            raise InvalidInput(
                f"'recovery.ladder.{verdict}': unknown rung(s) {', '.join(bad)}; "
                f"choose from {', '.join(sorted(known))}"
            )
        out[verdict] = tuple(rungs)
    return out
