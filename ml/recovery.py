"""Rebuilding the ML-API's view after it restarts: from container labels, not from a store.

Containers keep running while the ML-API is down. Their labels say which model each one
serves and how many restarts it has had; the main API's registrations say what state was
last reported. Together they give back every model's state; a model whose container died
unwatched is a failure like any other, and a registration that says "active" with no
container left is corrected.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

from ml.engine import ContainerInfo, EngineError
from ml.runtime import ACTIVE_STATES, FAILED_SUFFIX, exit_reason

if TYPE_CHECKING:
    from ml.manager import ModelManager

log = logging.getLogger(__name__)


def recover(m: ModelManager) -> None:
    """Rebuild the view from container labels (after an ML-API restart)."""
    m.refresh_registry()
    by_model: dict[int, list[ContainerInfo]] = {}
    for info in m.engine.list_managed(m.config.namespace):
        if info.model_id is not None:
            by_model.setdefault(info.model_id, []).append(info)
    for model_id, infos in by_model.items():
        _adopt(m, model_id, infos)
    for model_id, reg in m.registry.entries.items():
        if model_id not in by_model and reg.get("state") in ACTIVE_STATES:
            rt = m.runtime(model_id)
            m.describe(rt, reg)
            m.change(
                rt,
                state="stopped",
                health="unknown",
                last_error="its container disappeared while the ML-API was down",
            )


def _adopt(m: ModelManager, model_id: int, infos: list[ContainerInfo]) -> None:
    """Take over the best container of a model (a crash mid-restart can leave two)."""
    infos.sort(key=lambda i: (i.running, i.restarts, i.started_at or ""), reverse=True)
    keep, extra = infos[0], infos[1:]
    for info in extra:
        with contextlib.suppress(EngineError):
            m.engine.remove(info.id)
    rt = m.runtime(model_id)
    with rt.lock:
        m.describe(rt, m.registry.get(model_id))
        rt.image = rt.image or keep.image
        rt.version = rt.version or keep.labels.get("hpcgate.model_version", "")
        rt.container_id, rt.container_name = keep.id, keep.name
        rt.host_port = keep.host_port
        rt.restarts, rt.streak = keep.restarts, keep.streak
        reg = m.registry.get(model_id) or {}
        if keep.name.endswith(FAILED_SUFFIX):
            reason = reg.get("last_error") or "failed before the ML-API restarted"
            m.change(rt, state="failed", health="unhealthy", last_error=reason)
        elif keep.running:
            # health unknown until the next ping; a report tells the main API we're back
            m.change(
                rt, state="running", health="unknown", failures=0, last_error=reg.get("last_error")
            )
            rt.healthy_since = time.monotonic()
        else:
            # it died while nobody watched: a failure like any other
            m.supervisor.failure(rt, exit_reason(keep))
    log.info("recovered model %s from container %s: %s", model_id, keep.name, rt.state)
