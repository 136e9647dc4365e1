"""The worker's end-spool watcher: a cluster is harvested as soon as a job says it ended.

Local-access clusters: their scratch is this machine's file system, so a few listings a
second cost nothing. SSH clusters: the runner streams the remote spool's listing over one
long-lived channel (``RemoteEndSpool``), so a look costs no remote command either; while
that stream is down the periodic harvest is all there is, as before. The harvest itself is
the ordinary one, under the same per-cluster advisory lock as the periodic tick, so the two
never run at once and never disagree (issue 16).
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import Cluster
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.engine.end_spool import EndSpool, RemoteEndSpool
from hpcgate.services.cluster_ticks import harvest_cluster
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.harvest import watched_steps
from hpcgate.services.locks import NS_CLUSTER_HARVEST, try_advisory_lock
from hpcgate.settings import Settings

log = logging.getLogger(__name__)

_CLUSTERS_EVERY_S = 5.0


class EndWatcher:
    def __init__(
        self,
        engine: Engine,
        factory: sessionmaker[Session],
        connections: ClusterConnections,
        settings: Settings,
        interval_s: float = 0.2,
    ) -> None:
        self.engine = engine
        self.factory = factory
        self.connections = connections
        self.settings = settings
        self.interval_s = interval_s
        self.harvests = 0  # harvests the spool caused (tests read it)
        self._spools: dict[int, EndSpool] = {}
        self._listed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        with self._lock:
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._main, name="end-watch", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for spool in self._spools.values():
            if isinstance(spool, RemoteEndSpool):
                spool.close()

    def _main(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check_once()
            except Exception:
                log.exception("end-spool check failed")

    def _clusters(self) -> dict[int, EndSpool]:
        now = time.monotonic()
        if now - self._listed_at >= _CLUSTERS_EVERY_S:
            with session_scope(self.factory) as s:
                rows = s.scalars(
                    select(Cluster).where(
                        Cluster.access_mode.in_((AccessMode.LOCAL, AccessMode.SSH))
                    )
                ).all()
                spools = {int(c.id): self._spool_for(c) for c in rows}
            for cid, old in self._spools.items():
                if old is not spools.get(cid) and isinstance(old, RemoteEndSpool):
                    old.close()
            self._spools = {cid: sp for cid, sp in spools.items() if sp is not None}
            self._listed_at = now
        return self._spools

    def _spool_for(self, cluster: Cluster) -> EndSpool | None:
        """The cluster's spool, kept while its runner is the same one (a changed cluster
        gets a new adapter, hence a new stream)."""
        cid = int(cluster.id)
        old = self._spools.get(cid)
        if cluster.access_mode == AccessMode.LOCAL:
            if old is not None and not isinstance(old, RemoteEndSpool):
                return old
            return EndSpool(cluster.scratch_root)
        try:
            runner = self.connections.adapter_for(cluster).runner
        except Exception as exc:  # a misconfigured cluster: the periodic harvest says why
            log.debug("no end stream for cluster %s: %s", cid, exc)
            return None
        if isinstance(old, RemoteEndSpool) and old.runner is runner:
            return old
        if not hasattr(runner, "follow_directory"):
            return None
        return RemoteEndSpool(runner, cluster.scratch_root)

    def check_once(self) -> list[int]:
        """Harvest every local cluster with announced ends; returns the ids harvested."""
        harvested: list[int] = []
        for cluster_id, spool in self._clusters().items():
            if not spool.ensure():
                continue
            announced = spool.pending()
            if not spool.due(announced):
                continue
            with try_advisory_lock(self.engine, NS_CLUSTER_HARVEST, cluster_id) as got:
                if not got:
                    continue  # the periodic harvest is on it; look again next turn
                harvest_cluster(
                    self.factory, self.connections, self.settings, cluster_id, full=False
                )
                with session_scope(self.factory) as s:
                    active = {st.scheduler_job_id for st in watched_steps(s, cluster_id).active}
            self.harvests += 1
            harvested.append(cluster_id)
            spool.settle(announced, active)
        return harvested
