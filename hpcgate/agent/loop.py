"""The agent's main loop: pull and submit, harvest, heartbeat, clean — each on its interval.

One thread, explicit schedule: simple to reason about, and a tick never overlaps itself.
Every failure is logged and retried on the next tick; nothing is marked failed because
the API, the network or the scheduler hiccupped.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hpcgate.agent.client import (
    AgentClient,
    ApiUnavailable,
    HttpAddedStepStore,
    HttpStepStore,
)
from hpcgate.agent.config import AgentConfig
from hpcgate.agent.log_buffer import LogBuffer
from hpcgate.agent.outputs import OutputResponder
from hpcgate.engine.added_steps import submit_added_steps
from hpcgate.engine.blobs import BlobCache
from hpcgate.engine.cleanup import CleanupPolicy, clean_directory
from hpcgate.engine.end_spool import EndSpool
from hpcgate.engine.heartbeat import collect_sample
from hpcgate.engine.live_usage import with_live_usage
from hpcgate.engine.observe import observe
from hpcgate.engine.submission import submit_calculation
from hpcgate.engine.work import (
    ActiveStep,
    CalculationWork,
    StepObservation,
    UnsupportedWork,
    for_dispatcher,
)
from hpcgate.metrics.exporter import timed, timed_tick
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.environment import command_environment
from scheduler_adapters.errors import CommandFailed, SchedulerError
from scheduler_adapters.registry import get_adapter
from scheduler_adapters.runners.local import LocalRunner
from scheduler_adapters.types import JobId

log = logging.getLogger(__name__)


def next_due(now: float, interval: float, jitter: float, rng: random.Random | None = None) -> float:
    """When a task runs next: ``interval`` from ``now``, stretched or shrunk by up to ``jitter``.

    Why: hundreds of agents started by the same rollout would otherwise poll the API in the
    same instant forever; a few percent of randomness spreads them out within minutes.
    """
    factor = (rng or random).uniform(1 - jitter, 1 + jitter) if jitter else 1.0
    return now + interval * factor


def _seen(o: StepObservation) -> tuple[object, ...]:
    """What a harvest woken by a job's end compares: the states, not the live figures."""
    return (
        o.state,
        o.native_state,
        o.exit_code,
        tuple((t.task_index, t.state, t.native_state, t.exit_code) for t in o.tasks),
    )


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        client: AgentClient | None = None,
        adapter: SchedulerAdapter | None = None,
    ) -> None:
        self.config = config
        self.client = client or AgentClient(
            config.api_url,
            config.key(),
            verify=config.verify_tls,
            timeout=config.timeout_s,
            state_dir=config.state_dir,
        )
        self._adapters: dict[str | None, SchedulerAdapter] = {}
        if adapter is None:
            config.scratch_root.mkdir(parents=True, exist_ok=True)
            adapter = self._build_adapter(config.job_user)
        self.adapter = adapter
        self._adapters[config.job_user] = adapter
        self.store = HttpStepStore(self.client)
        self.added_store = HttpAddedStepStore(self.client)
        self.outputs = OutputResponder(self.client, str(config.scratch_root))
        # Binary inputs, fetched once per sha256 from the API and verified before staging.
        self.blobs = BlobCache(config.state_dir / "blobs", lambda sha: self.client.fetch_blob(sha))
        self.agent_name = f"{config.cluster}:{config.name}"
        # The active steps the last pull returned, until one harvest uses them (then None).
        self._pulled_steps: list[ActiveStep] | None = None
        # The end-spool thread harvests too: one tick at a time touches the scheduler.
        self._work_lock = threading.RLock()
        self._active_jobs: set[str] = set()  # jobs the last harvest saw still in the queue
        self._reported: dict[int, tuple[object, ...]] = {}  # what each step last showed
        self._long_poll = False  # the API honours pull?wait= (servers older than 16 do not)
        # The agent's own log lines, buffered on disk; shipped with the heartbeats.
        self.log_buffer: LogBuffer | None = None

    def _build_adapter(self, run_as: str | None) -> SchedulerAdapter:
        """Jobs of ``run_as`` (sudo), staged in directories only that account can use."""
        config = self.config
        options = dict(config.adapter_options)
        options.setdefault("pass_environment", config.pass_environment)
        return get_adapter(
            config.scheduler,
            LocalRunner(
                str(config.scratch_root),
                env=command_environment(None, config.pass_environment),
                job_user=run_as,
                shared_read=config.shared_read,
            ),
            template_dirs=[str(p) for p in config.template_dirs],
            run_as=run_as,
            **options,
        )

    def adapter_for(self, run_as: str | None) -> SchedulerAdapter:
        """The adapter for one job account (the owner's mapped login, or ``job_user``)."""
        key = run_as or self.config.job_user
        if key not in self._adapters:
            self._adapters[key] = self._build_adapter(key)
        return self._adapters[key]

    # -- ticks
    def pull_and_submit(self, wait: float = 0.0) -> int:
        """``wait`` > 0: long-poll, the API answers as soon as work for this cluster arrives."""
        reply = (
            self.client.pull(self.agent_name, wait=wait)
            if wait > 0
            else self.client.pull(self.agent_name)
        )
        self._long_poll = bool(reply.get("long_poll"))
        with self._work_lock:
            return self._submit_pulled(reply)

    def _submit_pulled(self, reply: dict[str, Any]) -> int:
        if reply.get("output_requests"):  # a user is waiting: before any submission
            self.outputs.answer_all(list(reply["output_requests"]))
        if "active_steps" in reply:  # absent from servers older than this agent
            self._pulled_steps = [ActiveStep.from_dict(d) for d in reply["active_steps"]]
        self._cancel(list(reply.get("cancel", [])))
        pulled = self._work_items(reply.get("calculations", []))
        # Running ladders with steps a refinement added (absent from older servers).
        added = self._work_items(reply.get("refinements", []))
        jobs = [(self._submit_one, w) for w in pulled] + [(self._submit_added, w) for w in added]
        # Up to submit_concurrency sbatch calls in flight (issue 16); each calculation keeps
        # its durable step store, so the crash guarantees are those of one at a time.
        with ThreadPoolExecutor(
            max_workers=max(1, min(self.config.submit_concurrency, len(jobs))),
            thread_name_prefix="agent-submit",
        ) as pool:
            futures = [pool.submit(fn, work) for fn, work in jobs]
        # The first failure is raised, after every submission ran. Counted: what brought
        # work (a ladder whose added steps must still wait is not, or it would be pulled
        # again at once, again and again).
        brought = sum(1 for future in futures if future.result())
        if jobs:
            self._pulled_steps = None  # it predates these submissions: ask afresh next time
        return brought

    def _work_items(self, raws: list[dict[str, Any]]) -> list[CalculationWork]:
        items = []
        for raw in raws:
            try:
                work = CalculationWork.from_dict(raw)
            except UnsupportedWork as exc:  # a newer service that ignored our features
                log.error("calculation %s not carried out: %s", raw.get("calculation_id"), exc)
                continue
            items.append(
                for_dispatcher(work, self.config.hpcgate_command, self.config.queue_overrides())
            )
        for work in items:  # built here, not in the submitting threads
            self.adapter_for(work.run_as)
        return items

    def _submit_one(self, work: CalculationWork) -> bool:
        outcome = submit_calculation(work, self.adapter_for(work.run_as), self.store, self.blobs)
        if outcome.deferred:
            log.warning("calculation %s deferred: %s", work.calculation_id, outcome.deferred)
        return True

    def _submit_added(self, work: CalculationWork) -> bool:
        """Steps added to a running calculation (refinement), each on its own: the worker's
        ``submit_added_steps``, with the API as the durable store. True if any was tried."""
        adapter = self.adapter_for(work.run_as)
        outcomes = submit_added_steps(work, adapter, self.added_store, self.blobs)
        for outcome in outcomes:
            if outcome.deferred:
                log.warning("calculation %s deferred: %s", work.calculation_id, outcome.deferred)
        return bool(outcomes)

    def harvest(self, full: bool = True) -> int:
        """Observe the active steps and report them.

        The list comes from the last pull when no harvest has used it yet (it was read after
        every earlier report), otherwise from GET /agent/active-steps: with the default
        intervals that halves the requests each agent makes.

        The periodic harvest (``full``) reports every step with its live sample: the safety
        net, the resource graphs and the count of polls a job was not seen. A harvest woken
        by a job's end reports only the steps whose state changed since the last report: a
        burst of N ends otherwise sends N reports of every active step (quadratic work on the
        API, issue 16), and counts an unseen job once per end instead of once per poll.
        """
        with self._work_lock:
            steps, self._pulled_steps = self._pulled_steps, None
            if steps is None:
                steps = self.client.active_steps()
            observations = observe(self.adapter, steps) if steps else []
            if full and observations:
                observations = with_live_usage(self.adapter, steps, observations)
            report = [o for o in observations if full or self._reported.get(o.step_id) != _seen(o)]
            cancels = self.client.report_observations(report) if report else []
            self._reported = {o.step_id: _seen(o) for o in observations}
            job_of_step = {s.step_id: s.scheduler_job_id for s in steps or ()}
            self._active_jobs = {
                job_of_step.get(o.step_id, "") for o in observations if o.still_active
            }
            self._cancel(cancels)
            return len(observations)

    def watch_end_spool(self, stop: threading.Event, interval_s: float = 0.2) -> None:
        """Harvest as soon as a job announces its end in the spool (issue 16); the periodic
        harvest stays the safety net. Runs beside ``run``'s loop, in its own thread."""
        spool = EndSpool(self.config.scratch_root)
        while not stop.wait(interval_s):
            try:
                if not spool.ensure():
                    continue
                announced = spool.pending()
                if not spool.due(announced):
                    continue
                with self._work_lock:
                    self.harvest(full=False)
                    active = set(self._active_jobs)
                spool.settle(announced, active)
            except ApiUnavailable as exc:
                log.warning("end-spool harvest: API unavailable, will retry: %s", exc.message)
            except SchedulerError as exc:
                log.warning("end-spool harvest failed, will retry: %s", exc.message)
            except Exception:
                log.exception("end-spool harvest failed unexpectedly")

    def heartbeat(self) -> int:
        try:
            self.client.buffer_sample(collect_sample(self.adapter))
        except SchedulerError as exc:
            log.warning("heartbeat collection failed: %s", exc.message)
        sent = self.client.flush_samples()
        if self.log_buffer is not None:
            self.log_buffer.ship(self.client)
        return sent

    def cleanup(self) -> int:
        self.blobs.prune()
        work = self.client.cleanup_work()
        policy = CleanupPolicy.from_dict(work.get("policy"))
        freed = 0
        for item in work.get("steps", []):
            report = clean_directory(
                self.adapter.runner, item["workdir"], policy, expired=bool(item["expired"])
            )
            freed += report.freed_bytes
            self.client.report_cleanup(
                item["step_id"],
                report.freed_bytes,
                bool(item["expired"]),
                policy.dry_run,
                report.refused,
            )
        return freed

    def _cancel(self, job_ids: list[str]) -> None:
        if not job_ids:
            return
        ids = [JobId.parse(j) for j in job_ids]
        try:
            self.adapter.cancel(ids)
        except CommandFailed:
            # Jobs of users mapped to their own login: only that login (or root) may cancel
            # them. Ask the scheduler who owns each job and cancel it through that account.
            owners_of = getattr(self.adapter, "job_owners", None)
            if owners_of is None or self.config.job_user is None:
                raise
            by_owner: dict[str, list[JobId]] = {}
            for jid, owner in owners_of(ids).items():
                if owner != "root":  # never: the sudo rule has no root, and neither do we
                    by_owner.setdefault(owner, []).append(jid)
            for owner, owned in by_owner.items():
                self.adapter_for(owner).cancel(owned)
        self.client.acknowledge_cancellations(job_ids)

    # -- loop
    def run(self, stop: threading.Event) -> None:
        iv = self.config.intervals
        schedule: list[tuple[str, float, Callable[[], int]]] = [
            ("pull", iv.pull_s, self.pull_and_submit),
            ("harvest", iv.harvest_s, timed("agent", "harvest", self.harvest)),
            ("heartbeat", iv.heartbeat_s, timed("agent", "heartbeat", self.heartbeat)),
            ("cleanup", iv.cleanup_s, timed("agent", "cleanup", self.cleanup)),
        ]
        due = {name: 0.0 for name, _, _ in schedule}
        log.info("agent %s started for cluster %s", self.agent_name, self.config.cluster)
        ends = threading.Thread(
            target=self.watch_end_spool, args=(stop,), name="end-spool", daemon=True
        )
        ends.start()
        while not stop.is_set():
            now = time.monotonic()
            for name, interval, fn in schedule:
                if now < due[name]:
                    continue
                due[name] = next_due(now, interval, iv.jitter)
                try:
                    if name == "pull":
                        # Long-poll until the next other task is due (never delays it). Pull
                        # again at once after one that brought work, that long-polled (the
                        # wait paced it) or that could not wait (other tasks were due); a
                        # server without long-polls (older) is polled every pull_s as before.
                        others = min(d for n, d in due.items() if n != "pull")
                        wait = min(iv.pull_wait_s, max(0.0, others - time.monotonic()))
                        wait = wait if wait >= 1.0 else 0.0
                        with timed_tick("agent", "pull"):  # includes the long-poll's wait
                            brought = self.pull_and_submit(wait)
                        if brought or (iv.pull_wait_s > 0 and (not wait or self._long_poll)):
                            due[name] = time.monotonic()
                        continue
                    fn()
                except ApiUnavailable as exc:
                    log.warning("%s: API unavailable, will retry: %s", name, exc.message)
                except SchedulerError as exc:
                    log.warning("%s failed, will retry: %s", name, exc.message)
                except Exception:
                    log.exception("%s failed unexpectedly", name)
            stop.wait(max(0.05, min(due.values()) - time.monotonic()))
        ends.join(30)
        self.client.close()
        self.adapter.runner.close()
