"""A step's raw outputs: where they are, and how to reach them in the cluster's access mode.

* **local** - the files are on this machine (``LocalOutputs``);
* **ssh** - over the runner's SFTP connection, as the owner's mapped login when there is
  one (``SftpOutputs``);
* **agent** - through the fetch relay (``services/output_relay.py``): the agent lists or
  reads on its login node and uploads the answer, one size-capped chunk at a time.

Every source answers the same two questions (``list_dir``, ``read``), so downloads and the
live tail (``services/output_follow.py``) are written once. Cluster-side confinement is in
``engine/outputs.py``; this module maps its refusals to HTTP errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import Calculation, Cluster, Step
from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.states import StepState
from hpcgate.engine.outputs import (
    Chunk,
    LocalOutputs,
    OutputEntry,
    OutputPathError,
    OutputsAccess,
    SftpOutputs,
    relative_path,
)
from hpcgate.errors import Conflict, Forbidden, HpcgateError, InvalidInput, NotFound, TooLarge
from hpcgate.services import output_relay as relay
from hpcgate.settings import Settings
from scheduler_adapters.errors import RunnerError

log = logging.getLogger(__name__)

DOWNLOAD_CHUNK = 1 << 20


class ClusterUnreachable(HpcgateError):
    status_code = 503
    code = "cluster_unreachable"


@dataclass(frozen=True)
class StepLocation:
    calculation_id: int
    step_index: int
    step_id: int
    cluster_id: int
    access_mode: AccessMode
    workdir: str
    state: StepState
    stdout: str  # the file a live tail follows by default (relative to workdir)


def default_stdout(calc: Calculation, step: Step) -> str:
    """SIESTA and QE write their output file; anything else: the job's stdout file."""
    context = dict(step.spec.get("context") or {})
    if calc.code in ("siesta", "qe") and not step.array_size:
        return str(context.get("output") or ("output.out" if calc.code == "siesta" else "pw.out"))
    return f"{step.job_name}-{step.scheduler_job_id or 'unknown'}.out"


def locate(session: Session, calc_id: int, step_index: int) -> StepLocation:
    calc = session.get(Calculation, calc_id)
    if calc is None:
        raise NotFound(f"calculation {calc_id} does not exist")
    step = next((s for s in calc.steps if s.index == step_index), None)
    if step is None:
        raise NotFound(f"calculation {calc_id} has no step {step_index}")
    if not step.workdir or step.state in (StepState.PLANNED, StepState.SUBMITTING):
        raise Conflict(
            f"step {step_index} of calculation {calc_id} has not been submitted yet: "
            "no outputs to show"
        )
    cluster = session.get(Cluster, step.cluster_id)
    assert cluster is not None
    return StepLocation(
        calc.id, step.index, step.id, cluster.id, cluster.access_mode, step.workdir,
        step.state, default_stdout(calc, step),
    )


def step_state(session: Session, step_id: int) -> StepState | None:
    step = session.get(Step, step_id)
    return step.state if step is not None else None


def mapped_errors(fn: Callable[[], Any]) -> Any:
    """Cluster-side refusals as API errors (the message says what, never a stack trace)."""
    try:
        return fn()
    except OutputPathError as exc:
        raise InvalidInput(str(exc)) from None
    except FileNotFoundError:
        raise NotFound("no such file or directory in the step's run directory") from None
    except NotADirectoryError:
        raise InvalidInput("a path component is not a directory") from None
    except IsADirectoryError:
        raise InvalidInput("that is a directory: list it instead") from None
    except PermissionError:
        raise Forbidden("the service's account may not read that file on the cluster") from None
    except RunnerError as exc:
        raise ClusterUnreachable(f"cannot reach the cluster: {exc.message}") from None
    except OSError as exc:
        raise Conflict(f"cannot read that on the cluster: {exc.strerror or exc}") from None


def checked_path(path: str) -> str:
    """The lexical check as a 422 (``""`` for the step's directory itself)."""
    rel = str(mapped_errors(lambda: relative_path(path)))
    return "" if rel == "." else rel


class RelaySource:
    """``OutputsAccess`` through the agent; blocking (call it from a thread)."""

    def __init__(
        self, factory: sessionmaker[Session], loc: StepLocation, settings: Settings
    ) -> None:
        self.factory = factory
        self.loc = loc
        self.timeout_s = settings.outputs.relay_timeout_s

    def _ask(self, kind: str, rel: str, offset: int = 0, length: int = 0) -> relay.RelayAnswer:
        with self.factory() as session:
            rid = relay.request(
                session, cluster_id=self.loc.cluster_id, step_id=self.loc.step_id, kind=kind,
                workdir=self.loc.workdir, path=rel, offset=offset, length=length,
            )
        deadline = time.monotonic() + self.timeout_s
        pause = 0.02
        state = "pending"
        while time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)
            with self.factory() as session:
                state, answer = relay.poll(session, rid)
            if answer is not None:
                return self._raise_error(answer)
        with self.factory() as session:
            relay.forget(session, rid)
        what = "did not pick up" if state == "pending" else "did not answer"
        raise relay.RelayTimeout(
            f"the agent of cluster {self.loc.cluster_id} {what} the request within "
            f"{self.timeout_s:g} s: is it running?"
        )

    @staticmethod
    def _raise_error(answer: relay.RelayAnswer) -> relay.RelayAnswer:
        error = answer.result.get("error")
        if error is None:
            return answer
        code = answer.result.get("code")
        exc_type: type[Exception] = {
            "not_found": FileNotFoundError,
            "unsafe": OutputPathError,
            "permission": PermissionError,
            "not_a_directory": NotADirectoryError,
        }.get(str(code), OSError)
        if exc_type is OSError:
            raise OSError(0, str(error))
        raise exc_type(str(error))

    def list_dir(self, workdir: str, rel: str) -> tuple[list[OutputEntry], bool]:
        answer = self._ask("list", rel)
        entries = [OutputEntry(**e) for e in answer.result.get("entries", [])]
        return entries, bool(answer.result.get("truncated"))

    def read(self, workdir: str, rel: str, offset: int, length: int) -> Chunk:
        answer = self._ask("read", rel, offset, length)
        return Chunk(
            offset, answer.content, int(answer.result.get("size", 0)),
            float(answer.result.get("mtime", 0)),
        )


def source_for(
    session: Session,
    factory: sessionmaker[Session],
    loc: StepLocation,
    settings: Settings,
    connections: Any,
) -> OutputsAccess:
    """How this step's files are reached (``connections``: the API's ``ClusterConnections``)."""
    cluster = session.get(Cluster, loc.cluster_id)
    assert cluster is not None
    if loc.access_mode is AccessMode.AGENT:
        return RelaySource(factory, loc, settings)
    if loc.access_mode is AccessMode.LOCAL:
        return LocalOutputs(cluster.scratch_root)
    from hpcgate.services.job_identity import account_for

    calc = session.get(Calculation, loc.calculation_id)
    owner = calc.owner_id if calc is not None else None
    account = account_for(session, cluster.id, owner) if owner is not None else None
    return SftpOutputs(connections.adapter_for(cluster, account).runner)


def listing(source: OutputsAccess, loc: StepLocation, path: str) -> dict[str, Any]:
    rel = checked_path(path)
    entries, truncated = mapped_errors(lambda: source.list_dir(loc.workdir, rel))
    return {
        "calculation_id": loc.calculation_id,
        "step_index": loc.step_index,
        "path": rel,
        "state": loc.state.value,
        "stdout": loc.stdout,
        "entries": [e.to_dict() for e in entries],
        "truncated": truncated,
    }


@dataclass(frozen=True)
class Download:
    name: str
    size: int
    first: Chunk
    chunks: Iterator[bytes]


def download(
    source: OutputsAccess, loc: StepLocation, path: str, settings: Settings
) -> Download:
    """The first chunk is read here (errors become HTTP errors before any byte is sent);
    the rest is read while the response streams. The size is fixed at the first read: a
    file still growing is sent as it was then."""
    rel = checked_path(path)
    if not rel:
        raise InvalidInput("name a file: the path is the step's directory itself")
    cap = settings.outputs.max_download_mb << 20
    chunk_size = (
        settings.outputs.relay_chunk_kb << 10
        if isinstance(source, RelaySource) else DOWNLOAD_CHUNK
    )
    first: Chunk = mapped_errors(lambda: source.read(loc.workdir, rel, 0, chunk_size))
    if first.size > cap:
        raise TooLarge(
            f"{rel} is {first.size} bytes, above the download limit of "
            f"{settings.outputs.max_download_mb} MiB (outputs.max_download_mb)"
        )

    def rest() -> Iterator[bytes]:
        head = first.data[: first.size]  # a file growing meanwhile is sent as it was
        yield head
        offset = len(head)
        while offset < first.size:
            want = min(chunk_size, first.size - offset)
            chunk: Chunk = mapped_errors(
                lambda at=offset, n=want: source.read(loc.workdir, rel, at, n)  # type: ignore[misc]
            )
            if not chunk.data:
                return  # truncated meanwhile
            yield chunk.data
            offset += len(chunk.data)

    return Download(rel.rsplit("/", 1)[-1], first.size, first, rest())
