"""Who may call what - the ONE table behind the RBAC matrix test and ``docs/rbac.md``.

Adding a route? Add one line to ``RBAC`` below: ``("METHOD", "/path/{param}"): MINIMUM`` with
MINIMUM one of ``MINIMUMS`` below, then run ``.venv/bin/python scripts/gen_rbac_doc.py``.
``tests/integration/api/test_rbac_matrix.py`` fails until both are done, and checks that the
route really enforces it (through the ``hpcgate/api/deps.py`` dependencies, which ask the
policy table of ``hpcgate/domain/access.py``) for every kind of caller.
"""

from __future__ import annotations

from hpcgate.domain.access import DESCRIPTIONS, POLICY, Role, Scope

PUBLIC = "public"  # anyone, no credentials
REFRESH_COOKIE = "refresh_cookie"  # authenticated by the hpcgate_refresh cookie only
USER = "user"  # any logged-in user (access JWT)
MODERATOR = "moderator"  # moderator or admin
ADMIN = "admin"
AGENT = "agent"  # a cluster agent's API key
ML_API = "ml_api"  # the ML-API's API key
ML_API_OR_ADMIN = "ml_api_or_admin"  # the ML-API's API key, or an admin's access token
METRICS = "metrics"  # the Prometheus scrape token (metrics.token), or an admin

MINIMUMS = (
    PUBLIC,
    REFRESH_COOKIE,
    USER,
    MODERATOR,
    ADMIN,
    AGENT,
    ML_API,
    ML_API_OR_ADMIN,
    METRICS,
)

# (method, path as FastAPI declares it) -> minimum principal
RBAC: dict[tuple[str, str], str] = {
    # health and auth
    ("GET", "/health"): PUBLIC,
    ("GET", "/metrics"): METRICS,
    ("POST", "/auth/login"): PUBLIC,
    ("POST", "/auth/refresh"): REFRESH_COOKIE,
    ("POST", "/auth/logout"): PUBLIC,
    ("GET", "/auth/me"): USER,
    ("PATCH", "/auth/me"): USER,
    # users
    ("GET", "/users"): MODERATOR,
    ("POST", "/users"): ADMIN,
    ("GET", "/users/{user_id}"): MODERATOR,
    ("PATCH", "/users/{user_id}"): ADMIN,
    ("DELETE", "/users/{user_id}"): ADMIN,
    ("PUT", "/users/{user_id}/password"): MODERATOR,
    ("POST", "/users/{user_id}/block"): MODERATOR,
    ("POST", "/users/{user_id}/unblock"): MODERATOR,
    ("POST", "/users/{user_id}/revoke-sessions"): ADMIN,
    # clusters, queues, keys
    ("GET", "/clusters"): USER,
    ("POST", "/clusters"): ADMIN,
    ("GET", "/clusters/{cluster_id}"): USER,
    ("GET", "/clusters/{cluster_id}/telemetry"): USER,
    ("PATCH", "/clusters/{cluster_id}"): ADMIN,
    ("DELETE", "/clusters/{cluster_id}"): ADMIN,
    ("GET", "/clusters/{cluster_id}/config"): ADMIN,
    ("POST", "/clusters/{cluster_id}/enable"): ADMIN,
    ("POST", "/clusters/{cluster_id}/disable"): ADMIN,
    ("GET", "/clusters/{cluster_id}/queues"): USER,
    ("POST", "/clusters/{cluster_id}/queues"): ADMIN,
    ("PATCH", "/clusters/{cluster_id}/queues/{logical_queue}"): ADMIN,
    ("DELETE", "/clusters/{cluster_id}/queues/{logical_queue}"): ADMIN,
    ("GET", "/clusters/{cluster_id}/api-keys"): ADMIN,
    ("POST", "/clusters/{cluster_id}/api-keys"): ADMIN,
    ("POST", "/clusters/{cluster_id}/api-keys/{key_id}/rotate"): ADMIN,
    ("DELETE", "/clusters/{cluster_id}/api-keys/{key_id}"): ADMIN,
    ("GET", "/clusters/{cluster_id}/accounts"): ADMIN,
    ("PUT", "/clusters/{cluster_id}/accounts/{user_id}"): ADMIN,
    ("DELETE", "/clusters/{cluster_id}/accounts/{user_id}"): ADMIN,
    ("GET", "/ml-api-keys"): ADMIN,
    ("POST", "/ml-api-keys"): ADMIN,
    ("POST", "/ml-api-keys/{key_id}/rotate"): ADMIN,
    ("DELETE", "/ml-api-keys/{key_id}"): ADMIN,
    ("GET", "/clusters/{cluster_id}/heartbeats"): USER,
    # logs and notifications
    ("GET", "/logs"): USER,
    ("DELETE", "/logs"): ADMIN,
    ("GET", "/logs/stream"): USER,
    ("GET", "/notifications"): ADMIN,
    ("POST", "/notifications/{outbox_id}/retry"): ADMIN,
    ("POST", "/notifications/test"): ADMIN,
    # calculations and steps
    ("GET", "/calculations"): USER,
    ("GET", "/calculations/{calc_id}/report.{fmt}"): USER,
    ("GET", "/analyses"): USER,
    ("GET", "/molecules"): USER,
    ("POST", "/molecules"): USER,
    ("GET", "/molecules/{molecule_id}"): USER,
    ("GET", "/molecules/{molecule_id}/compare"): USER,
    ("POST", "/calculations"): USER,
    ("POST", "/calculations/preview"): USER,
    ("POST", "/calculations/recommendation"): USER,
    ("POST", "/calculations/upload"): USER,
    ("POST", "/inputs"): USER,
    ("GET", "/calculations/{calc_id}"): USER,
    ("PATCH", "/calculations/{calc_id}"): USER,
    ("GET", "/calculations/{calc_id}/inputs/{file_name}"): USER,
    ("GET", "/calculations/{calc_id}/binary-inputs/{file_name}"): USER,
    ("POST", "/calculations/{calc_id}/cancel"): USER,
    ("POST", "/calculations/{calc_id}/approve"): MODERATOR,
    ("POST", "/calculations/{calc_id}/reject"): MODERATOR,
    ("PUT", "/calculations/{calc_id}/priority"): MODERATOR,
    ("GET", "/calculations/{calc_id}/results"): USER,
    # core-hour usage (own for users, all for moderators: services/usage.py), quotas, approvals
    ("GET", "/usage"): USER,
    ("GET", "/usage/quotas"): USER,
    ("GET", "/calculations/{calc_id}/usage"): USER,
    ("GET", "/clusters/{cluster_id}/quotas"): ADMIN,
    ("PUT", "/clusters/{cluster_id}/quotas/{user_id}"): ADMIN,
    ("DELETE", "/clusters/{cluster_id}/quotas/{user_id}"): ADMIN,
    ("GET", "/approvals"): MODERATOR,
    ("GET", "/calculations/{calc_id}/approval-context"): MODERATOR,
    ("GET", "/steps/{step_id}"): USER,
    ("GET", "/steps/{step_id}/samples"): USER,
    # raw outputs (read like the calculation: shared across the lab)
    ("GET", "/calculations/{calc_id}/steps/{step_index}/outputs"): USER,
    ("GET", "/calculations/{calc_id}/steps/{step_index}/outputs/{path:path}"): USER,
    ("GET", "/calculations/{calc_id}/steps/{step_index}/tail"): USER,
    # ML models and predictions
    ("GET", "/ml/models"): USER,
    ("POST", "/ml/models"): ADMIN,
    ("GET", "/ml/models/{model_id}"): USER,
    ("PATCH", "/ml/models/{model_id}"): ADMIN,
    ("DELETE", "/ml/models/{model_id}"): ADMIN,
    ("GET", "/ml/models/{model_id}/config"): ADMIN,
    ("GET", "/ml/models/{model_id}/accuracy"): USER,
    ("POST", "/predictions"): ML_API_OR_ADMIN,
    ("GET", "/calculations/{calc_id}/predictions"): USER,
    # the ML-API process
    ("GET", "/ml-api/models"): ML_API,
    ("GET", "/ml-api/models/{model_id}"): ML_API,
    ("PUT", "/ml-api/models/{model_id}/state"): ML_API,
    # cluster agents
    ("POST", "/agent/logs"): AGENT,
    ("POST", "/agent/pull"): AGENT,
    ("POST", "/agent/steps/{step_id}/submitting"): AGENT,
    ("POST", "/agent/steps/{step_id}/job-id"): AGENT,
    ("POST", "/agent/calculations/{calc_id}/submitted"): AGENT,
    ("POST", "/agent/calculations/{calc_id}/failed"): AGENT,
    ("GET", "/agent/active-steps"): AGENT,
    ("GET", "/agent/blobs/{sha256}"): AGENT,
    ("POST", "/agent/observations"): AGENT,
    ("POST", "/agent/cancellations/ack"): AGENT,
    ("POST", "/agent/heartbeats"): AGENT,
    ("GET", "/agent/cleanup"): AGENT,
    ("POST", "/agent/cleanup"): AGENT,
    ("POST", "/agent/output-requests/{request_id}/result"): AGENT,
    ("PUT", "/agent/output-requests/{request_id}/content"): AGENT,
}

# The callers every route is probed with.
PRINCIPALS = (
    "anonymous",
    "user",
    "moderator",
    "admin",
    "agent_key",
    "ml_api_key",
    "revoked_key",
    "expired_token",
)

ALLOW = "allow"  # anything but 401/403 (and never 5xx)

# minimum -> principal -> expected outcome; written once, used for every route.
EXPECTED: dict[str, dict[str, str | int]] = {
    PUBLIC: dict.fromkeys(PRINCIPALS, ALLOW),
    # the probes send no refresh cookie, so nobody gets in
    REFRESH_COOKIE: dict.fromkeys(PRINCIPALS, 401),
    USER: {
        "anonymous": 401,
        "user": ALLOW,
        "moderator": ALLOW,
        "admin": ALLOW,
        "agent_key": 401,
        "ml_api_key": 401,
        "revoked_key": 401,
        "expired_token": 401,
    },
    MODERATOR: {
        "anonymous": 401,
        "user": 403,
        "moderator": ALLOW,
        "admin": ALLOW,
        "agent_key": 401,
        "ml_api_key": 401,
        "revoked_key": 401,
        "expired_token": 401,
    },
    ADMIN: {
        "anonymous": 401,
        "user": 403,
        "moderator": 403,
        "admin": ALLOW,
        "agent_key": 401,
        "ml_api_key": 401,
        "revoked_key": 401,
        "expired_token": 401,
    },
    AGENT: {
        "anonymous": 401,
        "user": 401,
        "moderator": 401,
        "admin": 401,
        "agent_key": ALLOW,
        "ml_api_key": 403,
        "revoked_key": 401,
        "expired_token": 401,
    },
    ML_API: {
        "anonymous": 401,
        "user": 401,
        "moderator": 401,
        "admin": 401,
        "agent_key": 403,
        "ml_api_key": ALLOW,
        "revoked_key": 401,
        "expired_token": 401,
    },
    ML_API_OR_ADMIN: {
        "anonymous": 401,
        "user": 403,
        "moderator": 403,
        "admin": ALLOW,
        "agent_key": 403,
        "ml_api_key": ALLOW,
        "revoked_key": 401,
        "expired_token": 401,
    },
    # the probes carry no scrape token: as ADMIN (tests/integration/test_metrics.py: the token)
    METRICS: {
        "anonymous": 401,
        "user": 403,
        "moderator": 403,
        "admin": ALLOW,
        "agent_key": 401,
        "ml_api_key": 401,
        "revoked_key": 401,
        "expired_token": 401,
    },
}

_MEANING = {
    PUBLIC: "anyone, no credentials",
    REFRESH_COOKIE: "the `hpcgate_refresh` cookie (set by login)",
    USER: "any logged-in user",
    MODERATOR: "moderators and admins",
    ADMIN: "admins only",
    AGENT: "a cluster agent's API key",
    ML_API: "the ML-API's API key",
    ML_API_OR_ADMIN: "the ML-API's API key, or an admin",
    METRICS: "the Prometheus scrape token (`metrics.token`), or an admin",
}

_PRINCIPAL_MEANING = {
    "anonymous": "no credentials",
    "user": "access token of a user",
    "moderator": "access token of a moderator",
    "admin": "access token of an admin",
    "agent_key": "a cluster's agent API key",
    "ml_api_key": "an ML-API key",
    "revoked_key": "a revoked agent API key",
    "expired_token": "an expired admin access token",
}


def table_line(method: str, path: str, minimum: str = "USER") -> str:
    """The line to paste into ``RBAC`` for a route (used in the test's failure message)."""
    return f'    ("{method}", "{path}"): {minimum},'


_SCOPE_CELL = {None: "-", Scope.ALL: "yes", Scope.OWN: "own", Scope.LOWER_ROLE: "lower roles"}


def _render_policy() -> list[str]:
    """The access section: ``hpcgate/domain/access.py`` and its table, written out."""
    out = [
        "## Who may do what: `hpcgate/domain/access.py`",
        "",
        "Every access rule is one row of `POLICY` in `hpcgate/domain/access.py` (pure: no",
        "database, no web framework), asked through `may(action, actor, resource=None)` or",
        "`require(...)` (raises 403). The API's dependencies (`hpcgate/api/deps.py`: the",
        "`May...` aliases, `ManagedUser`, `PredictionWriter`, `MetricsReader`), the services",
        "(owner checks: `Owned(owner_id)`) and the ML-API (`ml/deps.py`) all ask it; nobody",
        "compares roles by hand. `GET /auth/me` lists the caller's `permissions` from the same",
        "table, and the portal shows only what they allow (the API's 403 is the guarantee).",
        "",
        "An actor is anything with an `id` and a `role` (a `User` row, the ML-API's caller).",
        "Cells: *yes* = on any resource; *own* = only on the actor's own (a calculation they",
        "own), listed in `permissions` as `<action>:own`; *lower roles* = only on accounts",
        "whose role ranks below the actor's, listed as `<action>:lower_role`; *-* = never.",
        "Nobody acts on their own account through an action (that is `/auth/me`).",
        "",
        "| permission | user | moderator | admin | what it covers |",
        "|---|---|---|---|---|",
    ]
    for action, row in POLICY.items():
        cells = [_SCOPE_CELL[row.get(role)] for role in (Role.USER, Role.MODERATOR, Role.ADMIN)]
        out.append(f"| `{action.value}` | " + " | ".join(cells) + f" | {DESCRIPTIONS[action]} |")
    return [*out, ""]


def render_doc() -> str:
    """``docs/rbac.md``, generated from the table above."""
    out = [
        "# Who may call what (generated)",
        "",
        "<!-- Generated by scripts/gen_rbac_doc.py from tests/integration/api/rbac_table.py;",
        "     do not edit by hand: tests/integration/api/test_rbac_matrix.py fails when stale. -->",
        "",
        *_render_policy(),
        "Machines use API keys: a cluster's **agent** key (agent routes only) and the",
        "**ML-API** key. Keys never open user routes, and access tokens never open agent routes.",
        "Predictions are written only by the ML-API's key (for the user it names) or an admin:",
        "they appear next to real results, so a user must not plant one.",
        "",
        "## Minimum caller per route",
        "",
        "| method | path | minimum caller |",
        "|---|---|---|",
    ]
    for (method, path), minimum in sorted(RBAC.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        out.append(f"| {method} | `{path}` | {minimum}: {_MEANING[minimum]} |")
    out += [
        "",
        "## Expected answer per caller",
        "",
        "Every route is called by each of these callers in the RBAC matrix test; *allow*",
        "means the request gets past authorization (any status but 401/403, never 5xx).",
        "",
        "| minimum \\ caller | " + " | ".join(PRINCIPALS) + " |",
        "|---|" + "---|" * len(PRINCIPALS),
    ]
    for minimum in MINIMUMS:
        cells = [str(EXPECTED[minimum][p]) for p in PRINCIPALS]
        out.append(f"| {minimum} | " + " | ".join(cells) + " |")
    out += ["", "Callers:", ""]
    out += [f"- `{p}`: {_PRINCIPAL_MEANING[p]}" for p in PRINCIPALS]
    out += _render_ml_api()
    out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------ the ML-API process
# ``hpcgate ml-api`` (ml/api.py) is a process of its own with its own routes. It learns who a
# caller is from the main API (GET /auth/me with the caller's token, cached <= 5 s), never
# from the token's claims. tests/integration/ml/test_ml_rbac_matrix.py walks every route of
# the real ML-API (against a real main API) with every caller below.

ML_API_RBAC: dict[tuple[str, str], str] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/models"): USER,
    ("POST", "/models"): ADMIN,
    ("GET", "/models/{model_id}"): USER,
    ("POST", "/models/{model_id}/run"): ADMIN,
    ("POST", "/models/{model_id}/stop"): ADMIN,
    ("DELETE", "/models/{model_id}"): ADMIN,
    ("GET", "/models/{model_id}/logs"): ADMIN,
    ("POST", "/models/{model_id}/invocations"): USER,
    ("GET", "/metrics"): METRICS,
}

ML_API_MINIMUMS = (PUBLIC, USER, ADMIN, METRICS)

ML_API_PRINCIPALS = (
    "anonymous",
    "user",
    "moderator",
    "admin",
    "admin_claim_user",
    "blocked_user",
    "revoked_admin",
    "expired_token",
    "ml_api_key",
    "agent_key",
)

ML_API_EXPECTED: dict[str, dict[str, str | int]] = {
    PUBLIC: dict.fromkeys(ML_API_PRINCIPALS, ALLOW),
    USER: {
        "anonymous": 401,
        "user": ALLOW,
        "moderator": ALLOW,
        "admin": ALLOW,
        "admin_claim_user": ALLOW,
        "blocked_user": 401,
        "revoked_admin": 401,
        "expired_token": 401,
        "ml_api_key": 401,
        "agent_key": 401,
    },
    ADMIN: {
        "anonymous": 401,
        "user": 403,
        "moderator": 403,
        "admin": ALLOW,
        "admin_claim_user": 403,
        "blocked_user": 401,
        "revoked_admin": 401,
        "expired_token": 401,
        "ml_api_key": 401,
        "agent_key": 401,
    },
}

# Without the scrape token (the matrix presents none), only an admin's token reads metrics.
ML_API_EXPECTED[METRICS] = dict(ML_API_EXPECTED[ADMIN])

_ML_API_PRINCIPAL_MEANING = {
    "anonymous": "no credentials",
    "user": "access token of a user",
    "moderator": "access token of a moderator",
    "admin": "access token of an admin",
    "admin_claim_user": (
        "a plain user's valid token whose `role` claim says admin (what a demoted admin's "
        "token looks like): the main API's word wins"
    ),
    "blocked_user": "access token of a user blocked after it was issued",
    "revoked_admin": "access token of an admin whose sessions were revoked (e.g. demoted)",
    "expired_token": "an expired admin access token",
    "ml_api_key": "the ML-API's own API key (for the main API only)",
    "agent_key": "a cluster's agent API key",
}


def _render_ml_api() -> list[str]:
    out = [
        "",
        "## The ML-API (`hpcgate ml-api`)",
        "",
        "The ML-API is a process of its own. It verifies the access token, then asks the main",
        "API who its holder is now (`GET /auth/me` with that token, the answer kept at most",
        "5 s per token): role, blocked and revoked sessions come from the main API, never from",
        "the token's claims. A demoted or blocked user loses ML-API rights within 5 s.",
        "",
        "| method | path | minimum caller |",
        "|---|---|---|",
    ]
    for (method, path), minimum in sorted(ML_API_RBAC.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        out.append(f"| {method} | `{path}` | {minimum}: {_MEANING[minimum]} |")
    out += [
        "",
        "| minimum \\ caller | " + " | ".join(ML_API_PRINCIPALS) + " |",
        "|---|" + "---|" * len(ML_API_PRINCIPALS),
    ]
    for minimum in ML_API_MINIMUMS:
        cells = [str(ML_API_EXPECTED[minimum][p]) for p in ML_API_PRINCIPALS]
        out.append(f"| {minimum} | " + " | ".join(cells) + " |")
    out += ["", "Callers:", ""]
    out += [f"- `{p}`: {_ML_API_PRINCIPAL_MEANING[p]}" for p in ML_API_PRINCIPALS]
    return out
