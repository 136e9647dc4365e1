"""Who may do what: the roles and ONE policy table, asked through ``may``.

Every access rule of hpcgate lives in ``POLICY`` below. The API's dependencies
(``hpcgate/api/deps.py``), the services and the ML-API ask ``may(action, actor, resource)``;
none of them compares roles itself. ``GET /auth/me`` lists the caller's ``permissions``
(``permissions_of``), so the portal renders from the same table instead of a copy.

Pure: no I/O, no ORM. An ``Actor`` is anything with an ``id`` and a ``role`` (a ``User`` row,
the ML-API's ``CallerIdentity``); a resource is either ``Owned`` (a calculation: its owner's
id) or another account (an ``Actor``: user management).

Scopes, per role and action:

* ``ALL``: on any resource (and with no resource at all);
* ``OWN``: only on resources the actor owns (``Owned.owner_id == actor.id``);
* ``LOWER_ROLE``: only on accounts whose role ranks below the actor's.

Nobody acts on their own account through an action (``/auth/me`` is for that): an account
resource equal to the actor is always refused, so an admin cannot lock themselves out.
A role absent from an action's row may not do it. Machines (agent and ML-API keys) are not
actors: their routes check the key's kind, not this table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from hpcgate.errors import Forbidden


class Role(enum.StrEnum):
    """A user's role; the database enum ``user_role`` has exactly these values."""

    USER = "user"
    MODERATOR = "moderator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"user": 0, "moderator": 1, "admin": 2}[self.value]


class NotifyLevel(enum.StrEnum):
    """Which e-mails a user wants (database enum ``notify_level``)."""

    INFO = "info"  # everything
    ERROR = "error"  # errors only


class ApiKeyOwner(enum.StrEnum):
    """Who an API key belongs to (database enum ``api_key_owner``)."""

    CLUSTER = "cluster"
    ML_API = "ml_api"


class Action(enum.StrEnum):
    """Everything a user may or may not do; the values are the permission names
    (``DESCRIPTIONS`` says what each covers)."""

    CALCULATION_READ = "calculation.read"
    CALCULATION_CREATE = "calculation.create"
    CALCULATION_UPDATE = "calculation.update"
    CALCULATION_CANCEL = "calculation.cancel"
    CALCULATION_APPROVE = "calculation.approve"
    CALCULATION_PRIORITIZE = "calculation.prioritize"
    USER_READ = "user.read"
    USER_MANAGE = "user.manage"
    USER_ADMINISTER = "user.administer"
    CLUSTER_READ = "cluster.read"
    CLUSTER_MANAGE = "cluster.manage"
    API_KEY_MANAGE = "api_key.manage"
    ML_MODEL_READ = "ml_model.read"
    ML_MODEL_INVOKE = "ml_model.invoke"
    ML_MODEL_MANAGE = "ml_model.manage"
    PREDICTION_WRITE = "prediction.write"
    NOTIFICATION_MANAGE = "notification.manage"
    LOG_READ = "log.read"
    LOG_DELETE = "log.delete"
    METRICS_READ = "metrics.read"
    USAGE_READ = "usage.read"
    QUOTA_MANAGE = "quota.manage"


class Scope(enum.StrEnum):
    ALL = "all"
    OWN = "own"
    LOWER_ROLE = "lower_role"


class Actor(Protocol):
    """Who acts: a ``User`` row, the ML-API's caller, or a ``Principal``."""

    @property
    def id(self) -> int: ...

    @property
    def role(self) -> Role | str: ...


@dataclass(frozen=True)
class Principal:
    """A plain ``Actor`` (tests, the ML-API, code without a ``User`` row)."""

    id: int
    role: Role


@dataclass(frozen=True)
class Owned:
    """A resource that belongs to a user (e.g. a calculation): only the owner matters."""

    owner_id: int


Resource = Owned | Actor

_U, _M, _A = Role.USER, Role.MODERATOR, Role.ADMIN
_EVERYONE = {_U: Scope.ALL, _M: Scope.ALL, _A: Scope.ALL}
_OWN_OR_MODERATOR = {_U: Scope.OWN, _M: Scope.ALL, _A: Scope.ALL}
_MODERATORS = {_M: Scope.ALL, _A: Scope.ALL}
_ADMINS = {_A: Scope.ALL}

POLICY: Mapping[Action, Mapping[Role, Scope]] = {
    # A lab shares results: everyone reads every calculation.
    Action.CALCULATION_READ: _EVERYONE,
    Action.CALCULATION_CREATE: _EVERYONE,
    # One researcher must not rename or stop another's run; moderators may.
    Action.CALCULATION_UPDATE: _OWN_OR_MODERATOR,
    Action.CALCULATION_CANCEL: _OWN_OR_MODERATOR,
    Action.CALCULATION_APPROVE: _MODERATORS,
    # A user's own priority would jump the queue: a moderator's decision.
    Action.CALCULATION_PRIORITIZE: _MODERATORS,
    Action.USER_READ: _MODERATORS,
    # Moderators manage plain users only; admins every other account.
    Action.USER_MANAGE: {_M: Scope.LOWER_ROLE, _A: Scope.ALL},
    Action.USER_ADMINISTER: _ADMINS,
    Action.CLUSTER_READ: _EVERYONE,
    Action.CLUSTER_MANAGE: _ADMINS,
    Action.API_KEY_MANAGE: _ADMINS,
    Action.ML_MODEL_READ: _EVERYONE,
    Action.ML_MODEL_INVOKE: _EVERYONE,
    Action.ML_MODEL_MANAGE: _ADMINS,
    # Predictions appear next to real results: a user must not plant one.
    Action.PREDICTION_WRITE: _ADMINS,
    Action.NOTIFICATION_MANAGE: _ADMINS,
    Action.LOG_READ: _EVERYONE,
    Action.LOG_DELETE: _ADMINS,
    Action.METRICS_READ: _ADMINS,
    # Who ran how much: one's own core-hours; moderators approve with everyone's in view.
    Action.USAGE_READ: _OWN_OR_MODERATOR,
    Action.QUOTA_MANAGE: _ADMINS,
}


# What each permission means, in words (docs/rbac.md, the portal's tooltips).
DESCRIPTIONS: Mapping[Action, str] = {
    Action.CALCULATION_READ: "view calculations: steps, inputs, results, reports, predictions",
    Action.CALCULATION_CREATE: "create calculations (at the default priority) and preview them",
    Action.CALCULATION_UPDATE: "rename or re-describe a calculation",
    Action.CALCULATION_CANCEL: "cancel a calculation",
    Action.CALCULATION_APPROVE: "approve or reject a calculation that waits for approval",
    Action.CALCULATION_PRIORITIZE: "set a calculation's priority (also when creating it)",
    Action.USER_READ: "list and view user accounts",
    Action.USER_MANAGE: "set another account's password, block and unblock it",
    Action.USER_ADMINISTER: "create and delete accounts, change their role, revoke their sessions",
    Action.CLUSTER_READ: "list and view clusters, their queues and heartbeats",
    Action.CLUSTER_MANAGE: "create, change, disable, delete clusters; queues, cluster accounts",
    Action.API_KEY_MANAGE: "create, rotate and revoke agent keys and ML-API keys",
    Action.ML_MODEL_READ: "list and view registered ML models and their live state",
    Action.ML_MODEL_INVOKE: "call a model through the ML-API",
    Action.ML_MODEL_MANAGE: "register, change, delete models; run and stop them; container logs",
    Action.PREDICTION_WRITE: "store a prediction by hand (the ML-API's key does it for users)",
    Action.NOTIFICATION_MANAGE: "the mail outbox: list, retry, send a test mail",
    Action.LOG_READ: "read every log line (list and live tail)",
    Action.LOG_DELETE: "delete log lines",
    Action.METRICS_READ: "read the Prometheus metrics (they say who runs how much where)",
    Action.USAGE_READ: "core-hour usage and efficiency (reports, CSV, per calculation)",
    Action.QUOTA_MANAGE: "set and remove users' monthly core-hour quotas per cluster",
}


def scope_of(action: Action, role: Role | str) -> Scope | None:
    """The scope ``role`` has for ``action``, or None when it may not do it at all."""
    return POLICY[action].get(Role(role))


def may(action: Action, actor: Actor, resource: Resource | None = None) -> bool:
    """Whether ``actor`` may do ``action`` (on ``resource``, when the rule depends on it).

    Without a resource the answer is yes only when the actor may do it on *any* resource:
    owner- or role-scoped rules need the resource to say yes.
    """
    scope = scope_of(action, actor.role)
    if scope is None:
        return False
    if resource is None:
        return scope is Scope.ALL
    if isinstance(resource, Owned):
        return scope is Scope.ALL or (scope is Scope.OWN and resource.owner_id == actor.id)
    if resource.id == actor.id:
        return False  # one's own account: /auth/me, never an action on oneself
    if scope is Scope.LOWER_ROLE:
        return Role(resource.role).rank < Role(actor.role).rank
    return scope is Scope.ALL


def may_some(action: Action, actor: Actor) -> bool:
    """Whether ``actor`` may do ``action`` on at least some resource (e.g. a moderator may
    manage *plain users*): the check before a resource is even looked up."""
    return scope_of(action, actor.role) is not None


def require(
    action: Action, actor: Actor, resource: Resource | None = None, *, message: str | None = None
) -> None:
    """``may`` or raise ``Forbidden`` (``message``, or one naming the role it takes)."""
    if not may(action, actor, resource):
        raise Forbidden(message or refusal(action))


def refusal(action: Action) -> str:
    """Why a role-less caller is refused: the lowest role that may do ``action`` at all."""
    roles = list(POLICY[action])
    if not roles:
        return f"nobody may {action.value}"
    return f"requires the {min(roles, key=lambda r: r.rank).value} role"


def permissions_of(role: Role | str) -> list[str]:
    """What ``GET /auth/me`` lists: ``"<action>"`` when the role may do it on any resource,
    ``"<action>:own"`` / ``"<action>:lower_role"`` when only within that scope."""
    out: list[str] = []
    for action, row in POLICY.items():
        scope = row.get(Role(role))
        if scope is Scope.ALL:
            out.append(action.value)
        elif scope is not None:
            out.append(f"{action.value}:{scope.value}")
    return out


__all__ = [
    "DESCRIPTIONS",
    "POLICY",
    "Action",
    "Actor",
    "ApiKeyOwner",
    "NotifyLevel",
    "Owned",
    "Principal",
    "Resource",
    "Role",
    "Scope",
    "may",
    "may_some",
    "permissions_of",
    "refusal",
    "require",
    "scope_of",
]
