"""The worker's end-spool watcher: a local cluster is harvested as soon as a job says it ended.

Local-access clusters only: their scratch is this machine's file system, so a few listings
a second cost nothing. SSH clusters keep the periodic harvest (a listing there is a remote
command). The harvest itself is the ordinary one, under the same per-cluster advisory lock
as the periodic tick, so the two never run at once and never disagree (issue 16).
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
from hpcgate.engine.end_spool import EndSpool
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
                rows = s.execute(
                    select(Cluster.id, Cluster.scratch_root).where(
                        Cluster.access_mode == AccessMode.LOCAL
                    )
                ).all()
            self._spools = {
                int(cid): self._spools.get(int(cid)) or EndSpool(root) for cid, root in rows
            }
            self._listed_at = now
        return self._spools

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
                harvest_cluster(self.factory, self.connections, self.settings, cluster_id)
                with session_scope(self.factory) as s:
                    active = {st.scheduler_job_id for st in watched_steps(s, cluster_id).active}
            self.harvests += 1
            harvested.append(cluster_id)
            spool.settle(announced, active)
        return harvested
