"""Monthly core-hour quotas per user and cluster (docs/accounting.md).

An admin sets a soft and/or hard quota (core-hours per UTC month) for a user on a cluster.
When a calculation is created, the owner's usage this month on that cluster (settled steps,
``services/usage.py``) is compared: at or past the hard quota the calculation is refused
(HTTP 403, ``quota_exceeded``); at or past the soft quota it is created, the answer carries
a warning and the owner (and admins) get a notification.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, Cluster, UsageQuota, User
from hpcgate.errors import HpcgateError, InvalidInput, NotFound
from hpcgate.services.usage import month_core_hours
from hpcgate.settings import Settings


class QuotaExceeded(HpcgateError):
    status_code = 403
    code = "quota_exceeded"


@dataclass(frozen=True)
class QuotaStatus:
    cluster_id: int
    cluster_name: str
    user_id: int
    used_core_hours: float
    soft_core_hours: float | None
    hard_core_hours: float | None

    @property
    def hard_reached(self) -> bool:
        return self.hard_core_hours is not None and self.used_core_hours >= self.hard_core_hours

    @property
    def soft_reached(self) -> bool:
        return self.soft_core_hours is not None and self.used_core_hours >= self.soft_core_hours

    def refusal(self) -> str:
        return (
            f"hard quota of {_num(self.hard_core_hours)} core-hours on cluster "
            f"{self.cluster_name} reached: {_num(self.used_core_hours)} used this month"
        )

    def warnings(self) -> list[str]:
        if not self.soft_reached:
            return []
        return [
            f"soft quota of {_num(self.soft_core_hours)} core-hours on cluster "
            f"{self.cluster_name} reached: {_num(self.used_core_hours)} used this month"
        ]


def _num(value: float | None) -> str:
    return f"{value or 0.0:.2f}"


def quota_of(s: Session, user_id: int, cluster_id: int) -> UsageQuota | None:
    return s.scalar(
        select(UsageQuota).where(UsageQuota.user_id == user_id, UsageQuota.cluster_id == cluster_id)
    )


def quota_status(
    s: Session, user_id: int, cluster: Cluster, quota: UsageQuota | None = None
) -> QuotaStatus:
    quota = quota if quota is not None else quota_of(s, user_id, cluster.id)
    return QuotaStatus(
        cluster_id=cluster.id,
        cluster_name=cluster.name,
        user_id=user_id,
        used_core_hours=month_core_hours(s, user_id, cluster.id),
        soft_core_hours=quota.soft_core_hours if quota else None,
        hard_core_hours=quota.hard_core_hours if quota else None,
    )


def enforce(s: Session, owner: User, cluster: Cluster) -> QuotaStatus:
    """Before a calculation is created: refuse at the hard quota.

    Without a quota nothing can be reached, so the month's usage is not summed (one
    statement less per creation, issue 16)."""
    quota = quota_of(s, owner.id, cluster.id)
    if quota is None or (quota.soft_core_hours is None and quota.hard_core_hours is None):
        return QuotaStatus(cluster.id, cluster.name, owner.id, 0.0, None, None)
    status = quota_status(s, owner.id, cluster, quota)
    if status.hard_reached:
        raise QuotaExceeded(
            status.refusal(),
            used_core_hours=status.used_core_hours,
            hard_core_hours=status.hard_core_hours,
            cluster_id=cluster.id,
        )
    return status


def notify_soft(s: Session, calc: Calculation, status: QuotaStatus, settings: Settings) -> None:
    """After it is created: tell the owner (and admins) when past the soft quota."""
    if not status.soft_reached:
        return
    from hpcgate.services.events import calculation_event

    message = status.warnings()[0]
    calculation_event(s, calc, "quota_warning", message, level="info", settings=settings)


def creation_warnings(s: Session, user_id: int, cluster_id: int) -> list[str]:
    """The warnings a creation answer carries (read-only)."""
    cluster = s.get(Cluster, cluster_id)
    return quota_status(s, user_id, cluster).warnings() if cluster is not None else []


# ------------------------------------------------------------------- administration
def set_quota(
    s: Session, cluster_id: int, user_id: int, soft: float | None, hard: float | None
) -> UsageQuota:
    if s.get(Cluster, cluster_id) is None:
        raise NotFound(f"cluster {cluster_id} not found")
    if s.get(User, user_id) is None:
        raise NotFound(f"user {user_id} not found")
    if soft is not None and hard is not None and soft > hard:
        raise InvalidInput("the soft quota must not be above the hard quota")
    quota = quota_of(s, user_id, cluster_id)
    if quota is None:
        quota = UsageQuota(cluster_id=cluster_id, user_id=user_id)
        s.add(quota)
    quota.soft_core_hours = soft
    quota.hard_core_hours = hard
    s.flush()
    return quota


def delete_quota(s: Session, cluster_id: int, user_id: int) -> None:
    quota = quota_of(s, user_id, cluster_id)
    if quota is None:
        raise NotFound(f"no quota for user {user_id} on cluster {cluster_id}")
    s.delete(quota)
    s.flush()


def cluster_of(s: Session, cluster_id: int) -> Cluster:
    cluster = s.get(Cluster, cluster_id)
    if cluster is None:
        raise NotFound(f"cluster {cluster_id} not found")
    return cluster


def cluster_quotas(s: Session, cluster_id: int) -> list[QuotaStatus]:
    cluster = cluster_of(s, cluster_id)
    quotas = s.scalars(
        select(UsageQuota).where(UsageQuota.cluster_id == cluster_id).order_by(UsageQuota.user_id)
    )
    return [quota_status(s, q.user_id, cluster) for q in quotas]


def user_quotas(s: Session, user_id: int) -> list[QuotaStatus]:
    rows = s.execute(
        select(UsageQuota, Cluster)
        .join(Cluster, Cluster.id == UsageQuota.cluster_id)
        .where(UsageQuota.user_id == user_id)
        .order_by(Cluster.name)
    ).all()
    return [quota_status(s, user_id, row[1]) for row in rows]
