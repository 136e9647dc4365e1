"""Endpoints for cluster agents, authenticated by their cluster's API key.

The agent runs the same submission and harvest code as the worker; these endpoints are
its durable ``StepStore`` (each call commits before it answers) and its report channel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from hpcgate.api.deps import AgentCluster, SessionDep, SettingsDep
from hpcgate.api.middleware import admission_released
from hpcgate.api.schemas.agent import (
    CancelAck,
    CleanupItem,
    CleanupReportIn,
    CleanupWork,
    FailureReport,
    JobIdReport,
    ObservationBatch,
    ObservationResult,
    PullRequest,
    PullResponse,
    SampleBatch,
    SampleResult,
)
from hpcgate.api.work_signal import work_signal
from hpcgate.db.models import Calculation, Step
from hpcgate.domain.states import CalculationState, StepState, transition_step
from hpcgate.engine.work import ClusterSample, StepObservation
from hpcgate.errors import Conflict, InvalidInput, NotFound
from hpcgate.services import output_relay
from hpcgate.services.agent_claims import claim_for_agent
from hpcgate.services.api_keys import AgentIdentity
from hpcgate.services.cancellations import acknowledge_cancellations, pending_cancellations
from hpcgate.services.cluster_health import mark_heard, record_cluster_sample
from hpcgate.services.cluster_telemetry import partition_payload
from hpcgate.services.dispatch import (
    apply_job_id,
    apply_submit_failed,
    apply_submitted,
    renew_claim,
)
from hpcgate.services.harvest import apply_observations, watched_steps
from hpcgate.services.input_blobs import agent_may_read, blob_size, read_chunks
from hpcgate.services.refinement_submit import refuse_points
from hpcgate.services.scratch_cleanup import cleanable_steps
from hpcgate.settings import Settings

router = APIRouter(prefix="/agent", tags=["agent"])


def _own_step(session: SessionDep, cluster: AgentIdentity, step_id: int) -> Step:
    step = session.get(Step, step_id, with_for_update=True)
    if step is None or step.cluster_id != cluster.id:
        raise NotFound(f"step {step_id} does not exist on cluster {cluster.name}")
    return step


#: Longest long-poll: below the usual 30-60 s idle timeouts of proxies in front of the API.
MAX_PULL_WAIT_S = 25.0


@router.post("/pull", response_model=PullResponse)
async def pull(
    body: PullRequest,
    cluster: AgentCluster,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    wait: Annotated[float, Query(ge=0, le=MAX_PULL_WAIT_S)] = 0.0,
) -> PullResponse:
    """Claim approved work for this cluster (highest priority first) and resume work in flight.

    A disabled cluster receives no new work; its running work is still harvested.

    ``wait`` (seconds, long-poll): when there is no work, answer as soon as some is committed
    for this cluster (``NOTIFY``), at the latest after ``wait``, with a fresh pull. While it
    waits the request holds no database connection, thread or admission slot.
    """
    signal = work_signal(request.app) if wait > 0 and cluster.enabled else None
    since = signal.generation(cluster.id) if signal is not None else 0
    reply = await run_in_threadpool(_pull, body, cluster, session, settings)
    if signal is None or reply.calculations or reply.refinements or reply.output_requests:
        reply.long_poll = signal is not None
        return reply
    async with admission_released(request.scope):
        await signal.wait(cluster.id, since, wait)
    reply = await run_in_threadpool(_pull, body, cluster, session, settings)
    reply.long_poll = True
    return reply


def _pull(
    body: PullRequest, cluster: AgentIdentity, session: Session, settings: Settings
) -> PullResponse:
    calcs: list[dict[str, Any]] = []
    added: list[dict[str, Any]] = []
    if cluster.enabled:
        # New work first, then steps added to running ladders (refinement), in what is
        # left; only what this agent's version can carry out (services/agent_claims.py).
        calcs, added = claim_for_agent(
            session, cluster.id, body.limit, f"agent:{body.agent}", body.features, settings
        )
    # Half the agents' requests: the harvest that follows needs exactly this list.
    watched = watched_steps(session, cluster.id)
    outputs = output_relay.claim(session, cluster.id)  # raw-output fetches (issue 20)
    session.commit()  # here, in the route's thread: the request ends without another hop
    return PullResponse(
        calculations=calcs,
        refinements=added,
        cancel=[job for _, job in watched.cancellations],
        active_steps=[asdict(a) for a in watched.active],
        output_requests=outputs,
    )


@router.post("/steps/{step_id}/submitting")
def step_submitting(
    step_id: int, cluster: AgentCluster, session: SessionDep
) -> dict[str, str | bool]:
    """Committed before the agent calls the scheduler: durable before acted on.

    ``fresh``: this call moved the step out of ``planned``, so no job of its name can exist
    and the agent skips the search by name (issue 16)."""
    step = _own_step(session, cluster, step_id)
    fresh = step.state is StepState.PLANNED
    if step.state is not StepState.SUBMITTING:
        step.state = transition_step(step.state, StepState.SUBMITTING)
    renew_claim(session, step.calculation_id)
    return {"state": step.state.value, "fresh": fresh}


@router.post("/steps/{step_id}/job-id")
def step_job_id(
    step_id: int, body: JobIdReport, cluster: AgentCluster, session: SessionDep
) -> dict[str, str]:
    _own_step(session, cluster, step_id)
    try:
        apply_job_id(session, step_id, body.job_id)
    except ValueError as exc:
        raise Conflict(str(exc)) from None
    return {"state": "queued"}


def _own_calc(session: SessionDep, cluster: AgentIdentity, calc_id: int) -> Calculation:
    calc = session.get(Calculation, calc_id)
    if calc is None or calc.cluster_id != cluster.id:
        raise NotFound(f"calculation {calc_id} does not exist on cluster {cluster.name}")
    return calc


@router.post("/calculations/{calc_id}/submitted")
def calculation_submitted(
    calc_id: int, cluster: AgentCluster, session: SessionDep, settings: SettingsDep
) -> dict[str, str]:
    _own_calc(session, cluster, calc_id)
    apply_submitted(session, calc_id, settings)
    return {"state": "submitted"}


@router.post("/calculations/{calc_id}/failed")
def calculation_failed(
    calc_id: int,
    body: FailureReport,
    cluster: AgentCluster,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, str]:
    calc = _own_calc(session, cluster, calc_id)
    if calc.state in (CalculationState.SUBMITTED, CalculationState.RUNNING):
        refuse_points(session, calc_id, body.message)  # an added step refused (refinement)
    else:
        apply_submit_failed(session, calc_id, body.message, settings)
    return {"state": "failed"}


@router.get("/active-steps")
def list_active_steps(cluster: AgentCluster, session: SessionDep) -> list[dict[str, Any]]:
    active = watched_steps(session, cluster.id).active
    session.commit()  # see pull
    return [asdict(a) for a in active]


@router.post("/observations", response_model=ObservationResult)
def report_observations(
    body: ObservationBatch, cluster: AgentCluster, session: SessionDep, settings: SettingsDep
) -> ObservationResult:
    try:
        observations = [StepObservation.from_dict(o) for o in body.observations]
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidInput(f"malformed observation: {exc}") from None
    cancels = apply_observations(
        session,
        cluster.id,
        observations,
        lost_after=settings.scheduler.lost_after_ticks,
        settings=settings,
    )
    pending = [job for _, job in pending_cancellations(session, cluster.id)]
    return ObservationResult(applied=len(observations), cancel=sorted(set(cancels) | set(pending)))


@router.post("/cancellations/ack")
def acknowledge(body: CancelAck, cluster: AgentCluster, session: SessionDep) -> dict[str, int]:
    acked = set(body.job_ids)
    sent = [(sid, job) for sid, job in pending_cancellations(session, cluster.id) if job in acked]
    acknowledge_cancellations(session, sent)
    return {"acknowledged": len(sent)}


@router.post("/heartbeats", response_model=SampleResult)
def heartbeats(body: SampleBatch, cluster: AgentCluster, session: SessionDep) -> SampleResult:
    """Idempotent by ``sample_key``: an agent that retries a batch never stores it twice."""
    samples = []
    for raw in body.samples:
        try:
            sample = ClusterSample(
                ts=str(raw["ts"]),
                nodes=tuple(raw.get("nodes", ())),
                queue_depth=int(raw.get("queue_depth", 0)),
                running_jobs=int(raw.get("running_jobs", 0)),
                sample_key=str(raw["sample_key"]),
                partitions=partition_payload(raw.get("partitions")),
            )
            ts = datetime.fromisoformat(sample.ts)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed heartbeat sample: {exc}") from None
        if ts.tzinfo is None:
            raise InvalidInput(f"heartbeat sample time {sample.ts!r} has no time zone")
        samples.append((sample, ts))
    stored = sum(record_cluster_sample(session, cluster.id, sample) for sample, _ in samples)
    if samples:
        mark_heard(session, cluster.id, max(ts for _, ts in samples))
    session.commit()  # see pull
    return SampleResult(stored=stored, duplicates=len(samples) - stored)


@router.get("/cleanup", response_model=CleanupWork)
def cleanup_work(cluster: AgentCluster, session: SessionDep) -> CleanupWork:
    items = [
        CleanupItem(step_id=c.step_id, workdir=c.workdir, expired=c.expired)
        for c in cleanable_steps(session, cluster.id, cluster.cleanup_policy)
    ]
    return CleanupWork(policy=dict(cluster.cleanup_policy or {}), steps=items)


@router.post("/cleanup")
def cleanup_report(
    body: CleanupReportIn, cluster: AgentCluster, session: SessionDep
) -> dict[str, str]:
    step = _own_step(session, cluster, body.step_id)
    if body.expired and not body.dry_run and step.cleaned_at is None:
        step.cleaned_at = datetime.now(UTC)
        if step.state is not StepState.CLEANED:
            step.state = StepState.CLEANED
    return {"state": step.state.value}


@router.get("/blobs/{sha256}", response_class=StreamingResponse)
def get_blob(
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    cluster: AgentCluster,
    session: SessionDep,
    request: Request,
) -> StreamingResponse:
    """A binary input's bytes, for staging. Only a blob that a calculation of this agent's
    cluster, claimed and being submitted, refers to; anything else is a 404 (an agent cannot
    probe for other clusters' files). The agent checks the sha256 of what it receives."""
    size = blob_size(session, sha256) if agent_may_read(session, cluster.id, sha256) else None
    if size is None:
        raise NotFound(f"no input file {sha256[:12]}… for cluster {cluster.name}")
    factory: sessionmaker[Session] = request.app.state.sessionmaker

    def chunks() -> Iterator[bytes]:
        # Its own session: the request's one ends when the route returns, the stream later.
        with factory() as s:
            yield from read_chunks(s, sha256, size)

    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={"Content-Length": str(size), "X-Content-SHA256": sha256},
    )
