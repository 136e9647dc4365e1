"""What ``Client`` and ``AsyncClient`` share beyond single operations, free of I/O.

A call that needs several requests (submit: the clusters, then the create; clone: the
calculation, its inputs, then the create) is written once here as a *flow*: a generator
that yields each ``Op`` and is sent back its parsed answer. Each client only drives it
(``_drive``), blocking or awaiting. Streams (SSE) are mapped to items by ``EventStream``,
so a client only reads lines; download targets and the wait deadline are decided here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar

from hpcgate.client import ops
from hpcgate.client._core import Op, SseParser, log_line
from hpcgate.client.models import CalculationCreate, CalculationDetail, LogLine
from hpcgate.client.spec import Submission, clone_body, pick_target

T = TypeVar("T")

#: Yields operations, is sent each one's parsed answer, returns the call's result.
Flow = Generator[Op[Any], Any, T]


def submission_body(submission: Submission) -> Flow[CalculationCreate]:
    cluster, queue = pick_target((yield ops.clusters()), submission.cluster, submission.queue)
    return submission.body(cluster.id, queue)


def submit(submission: Submission) -> Flow[CalculationDetail]:
    body = yield from submission_body(submission)
    detail: CalculationDetail = yield ops.create(body, submission.binary or None)
    return detail


def clone(calc_id: int, changes: Mapping[str, Any] | None) -> Flow[CalculationDetail]:
    """Fetch a calculation and its inputs, apply ``changes``, create the copy."""
    detail: CalculationDetail = yield ops.calculation(calc_id)
    names = list((detail.configuration.get("inputs") or {}).keys())
    texts: dict[str, str] = {}
    for name in names:
        texts[name] = yield ops.input_text(calc_id, name)
    changes = dict(changes or {})
    cluster = changes.pop("cluster", None)
    body = clone_body(detail, texts, changes)
    if cluster is not None:
        chosen, queue = pick_target((yield ops.clusters()), cluster, body["logical_queue"])
        body["cluster_id"], body["logical_queue"] = chosen.id, queue
    created: CalculationDetail = yield ops.create(CalculationCreate.model_validate(body), None)
    return created


def log_stream(
    calculation_id: int | None, level: str | None, after_id: int | None, max_duration_s: float
) -> Op[None]:
    """``GET /logs/stream`` (SSE); read with :func:`log_events`."""
    return Op(
        "GET",
        "/logs/stream",
        lambda _: None,
        params={
            "calculation_id": calculation_id,
            "level": level,
            "after_id": after_id,
            "max_duration_s": max_duration_s,
            "heartbeat_s": 5,
        },
    )


class EventStream(Generic[T]):
    """The items of one SSE stream: ``feed(line)`` gives an item or None; ``ended`` once the
    server said the stream is over."""

    def __init__(
        self, item_kind: str, convert: Callable[[str], T], end_kinds: frozenset[str]
    ) -> None:
        self.parser = SseParser()
        self.item_kind = item_kind
        self.convert = convert
        self.end_kinds = end_kinds
        self.ended = False

    def feed(self, line: str) -> T | None:
        event = self.parser.feed(line)
        if event is None:
            return None
        kind, data, _ = event
        if kind == self.item_kind:
            return self.convert(data)
        self.ended = kind in self.end_kinds
        return None


def output_lines() -> EventStream[str]:
    """A step's output tail: ``line`` events until ``done`` (the step ended) or ``end``."""
    return EventStream("line", str, frozenset({"done", "end"}))


def log_events() -> EventStream[LogLine]:
    return EventStream("log", log_line, frozenset({"end"}))


def download_target(dest: str | Path, path: str) -> tuple[Path, Path]:
    """(file to write, its temporary ``.part`` sibling): ``dest`` may be a directory."""
    target = Path(dest)
    if target.is_dir():
        target = target / PurePosixPath(path).name
    return target, target.with_name(f".{target.name}.part")


def wait_deadline(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else time.monotonic() + timeout_s


def wait_over(detail: CalculationDetail, calc_id: int, deadline: float | None) -> bool:
    """True once the calculation is final; TimeoutError past the deadline."""
    if detail.finished:
        return True
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError(f"calculation {calc_id} still {detail.state}")
    return False
