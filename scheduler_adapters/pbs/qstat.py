"""``qstat -f`` output -> :class:`PbsJob` records (pure).

Every parser takes text and returns records, or raises :class:`OutputParseError`;
nothing else escapes (hypothesis-tested). *Structural* garbage (invalid JSON, text
without ``Job Id:``, a job without a ``job_state``) raises. An *optional* value that
does not parse becomes ``None`` with a warning (:func:`values.optional`).

Formats (all captured under ``tests/fixtures/scheduler_output/``):

* ``qstat -f -F json`` (PBS Pro >= 13): ``{"Jobs": {"<id>": {attr: value,
  "Resource_List": {...}, "resources_used": {...}}}}``; numbers are JSON
  numbers, ``Jobs`` is absent when nothing matches.
* ``qstat -f`` text: ``Job Id: <id>`` then indented ``key = value`` lines.
  Long values continue on the next line: PBS Pro indents continuations with a
  TAB, Torque with 8 spaces, and a value that itself contains a newline (an
  exported bash function in ``Variable_List``) continues at column 0 or 1.
  The Slurm wrappers indent *attributes* with a TAB and never continue.
  So the attribute indent is learned from the first attribute of each block.

What a job's state means is decided in ``pbs.states``; its records are built in
``pbs.records``; ``pbsnodes`` and ``qsub`` output have modules of their own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.pbs.values import optional, parse_job_id
from scheduler_adapters.types import JobId

_JOB_HEADER_RE = re.compile(r"^Job Id:\s*(?P<id>\S+)\s*$")
_ATTR_RE = re.compile(r"^(?P<indent>[ \t]+)(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*) = ?(?P<value>.*)$")


@dataclass(frozen=True)
class PbsJob:
    """One job as qstat reported it; attributes flattened to ``a.b`` keys and text values."""

    native_id: str
    job_id: JobId
    state: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.attributes.get(key)

    @property
    def name(self) -> str | None:
        return self.get("Job_Name")

    @property
    def comment(self) -> str | None:
        return self.get("comment")

    @property
    def exit_status(self) -> int | None:
        """PBS Pro ``Exit_status``, Torque ``exit_status``; None when absent or odd."""
        raw = self.get("Exit_status") or self.get("exit_status")
        return optional(raw, int, self.native_id, "Exit_status")

    @property
    def substate(self) -> int | None:
        return optional(self.get("substate"), int, self.native_id, "substate")

    @property
    def array_job_id(self) -> str | None:
        """The parent array id of a subjob (``123[].srv``), else None."""
        return self.job_id.value if self.job_id.task is not None else None


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return ""
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list):
        return ",".join(_scalar_text(v) for v in value)
    raise TypeError(f"unexpected JSON value {value!r}")


def _flatten(attrs: Mapping[str, Any], raw: str) -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in attrs.items():
        try:
            if isinstance(value, dict):
                for sub, subvalue in value.items():
                    flat[f"{key}.{sub}"] = _scalar_text(subvalue)
            else:
                flat[key] = _scalar_text(value)
        except TypeError as exc:
            raise OutputParseError(f"attribute {key!r}: {exc}", raw=raw) from exc
    return flat


def _make_job(native: str, attrs: dict[str, str], raw: str) -> PbsJob:
    state = attrs.get("job_state", "").strip()
    if not state:
        raise OutputParseError(f"job {native!r} has no job_state", raw=raw)
    return PbsJob(
        native_id=native, job_id=parse_job_id_or_raise(native, raw), state=state, attributes=attrs
    )


def parse_job_id_or_raise(native: str, raw: str) -> JobId:
    try:
        return parse_job_id(native)
    except OutputParseError as exc:
        raise OutputParseError(f"bad job id {native!r}", raw=raw) from exc


def parse_qstat_json(text: str) -> list[PbsJob]:
    """``qstat -f -F json [-x] [-t]`` -> jobs (empty when ``Jobs`` is absent)."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise OutputParseError(f"qstat JSON does not decode ({exc})", raw=text) from exc
    if not isinstance(doc, dict):
        raise OutputParseError("qstat JSON is not an object", raw=text)
    jobs = doc.get("Jobs", {})
    if not isinstance(jobs, dict):
        raise OutputParseError("qstat JSON 'Jobs' is not an object", raw=text)
    out: list[PbsJob] = []
    for native, attrs in jobs.items():
        if not isinstance(attrs, dict):
            raise OutputParseError(f"qstat JSON job {native!r} is not an object", raw=text)
        out.append(_make_job(native, _flatten(attrs, text), text))
    return out


def _text_blocks(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (job id, attributes) for each ``Job Id:`` block of ``qstat -f`` text."""
    native: str | None = None
    attrs: dict[str, str] = {}
    indent: str | None = None
    last_key: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        header = _JOB_HEADER_RE.match(line)
        if header is not None:
            if native is not None:
                yield native, attrs
            native, attrs, indent, last_key = header["id"], {}, None, None
            continue
        if native is None:
            raise OutputParseError("qstat -f text: content before the first 'Job Id:'", raw=text)
        attr = _ATTR_RE.match(line)
        if attr is not None and (indent is None or attr["indent"] == indent):
            indent = attr["indent"]
            last_key = attr["key"]
            attrs[last_key] = attr["value"].rstrip()
            continue
        if last_key is None:
            raise OutputParseError(
                f"qstat -f text: line {line!r} is neither an attribute nor a continuation",
                raw=text,
            )
        # Continuation: wrapped value (TAB for PBS Pro, 2x indent for Torque) or
        # a value with a real newline in it (exported bash functions).
        if line.startswith("\t") and indent != "\t":
            attrs[last_key] += line[1:].rstrip()
        elif indent is not None and line.startswith(indent * 2):
            attrs[last_key] += line[len(indent) * 2 :].rstrip()
        else:
            attrs[last_key] += "\n" + line.rstrip()
    if native is not None:
        yield native, attrs


def parse_qstat_text(text: str) -> list[PbsJob]:
    """``qstat -f`` key = value blocks (PBS Pro, Torque, slurm-wlm-torque)."""
    return [_make_job(native, attrs, text) for native, attrs in _text_blocks(text)]


def parse_qstat(text: str, *, json_format: bool) -> list[PbsJob]:
    return parse_qstat_json(text) if json_format else parse_qstat_text(text)
