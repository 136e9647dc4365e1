"""The policy table, written out by hand: every role x every action, with and without a resource.

If a rule changes on purpose, change ``EXPECTED`` here (and the portal follows through
``GET /auth/me``). ``-`` = never, ``all`` = on any resource, ``own`` = only the actor's own
resources, ``lower`` = only accounts whose role ranks below the actor's.
"""

from __future__ import annotations

import pytest

from hpcgate.domain.access import (
    DESCRIPTIONS,
    POLICY,
    Action,
    Owned,
    Principal,
    Role,
    may,
    may_some,
    permissions_of,
    refusal,
    require,
)
from hpcgate.errors import Forbidden

A = Action
# action: (user, moderator, admin)
EXPECTED: dict[Action, tuple[str, str, str]] = {
    A.CALCULATION_READ: ("all", "all", "all"),
    A.CALCULATION_CREATE: ("all", "all", "all"),
    A.CALCULATION_UPDATE: ("own", "all", "all"),
    A.CALCULATION_CANCEL: ("own", "all", "all"),
    A.CALCULATION_APPROVE: ("-", "all", "all"),
    A.CALCULATION_PRIORITIZE: ("-", "all", "all"),
    A.USER_READ: ("-", "all", "all"),
    A.USER_MANAGE: ("-", "lower", "all"),
    A.USER_ADMINISTER: ("-", "-", "all"),
    A.CLUSTER_READ: ("all", "all", "all"),
    A.CLUSTER_MANAGE: ("-", "-", "all"),
    A.API_KEY_MANAGE: ("-", "-", "all"),
    A.ML_MODEL_READ: ("all", "all", "all"),
    A.ML_MODEL_INVOKE: ("all", "all", "all"),
    A.ML_MODEL_MANAGE: ("-", "-", "all"),
    A.PREDICTION_WRITE: ("-", "-", "all"),
    A.NOTIFICATION_MANAGE: ("-", "-", "all"),
    A.LOG_READ: ("all", "all", "all"),
    A.LOG_DELETE: ("-", "-", "all"),
    A.METRICS_READ: ("-", "-", "all"),
    A.USAGE_READ: ("own", "all", "all"),
    A.QUOTA_MANAGE: ("-", "-", "all"),
}
ROLES = (Role.USER, Role.MODERATOR, Role.ADMIN)
ME = 7
OTHER = 8


def test_every_action_is_written_out() -> None:
    assert set(EXPECTED) == set(Action) == set(POLICY) == set(DESCRIPTIONS)


def test_action_values_are_dotted_names() -> None:
    for action in Action:
        noun, _, verb = action.value.partition(".")
        assert noun, action
        assert verb, action
        assert action.value == action.value.lower(), action


CASES = [(action, role) for action in Action for role in ROLES]


@pytest.mark.parametrize(("action", "role"), CASES, ids=[f"{a.value}-{r.value}" for a, r in CASES])
def test_matrix(action: Action, role: Role) -> None:
    expected = EXPECTED[action][ROLES.index(role)]
    actor = Principal(id=ME, role=role)
    mine, theirs = Owned(owner_id=ME), Owned(owner_id=OTHER)
    plain, peer = Principal(id=OTHER, role=Role.USER), Principal(id=OTHER, role=role)
    myself = Principal(id=ME, role=role)

    assert may(action, actor) is (expected == "all")
    assert may_some(action, actor) is (expected != "-")
    assert may(action, actor, mine) is (expected in ("all", "own"))
    assert may(action, actor, theirs) is (expected == "all")
    # accounts as the resource: never oneself; "lower" reaches plain users, not peers
    assert may(action, actor, myself) is False
    assert may(action, actor, plain) is (
        expected == "all" or (expected == "lower" and role.rank > 0)
    )
    assert may(action, actor, peer) is (expected == "all")


@pytest.mark.parametrize("role", ROLES)
def test_permissions_of_lists_the_row_of_the_role(role: Role) -> None:
    column = ROLES.index(role)
    suffix = {"all": "", "own": ":own", "lower": ":lower_role"}
    expected = [
        f"{action.value}{suffix[row[column]]}"
        for action, row in EXPECTED.items()
        if row[column] != "-"
    ]
    assert permissions_of(role) == expected
    assert permissions_of(role.value) == expected  # a role read as text (a token claim)


def test_admins_may_do_everything_but_act_on_themselves() -> None:
    admin = Principal(id=ME, role=Role.ADMIN)
    assert all(may(action, admin) for action in Action)
    assert not may(Action.USER_MANAGE, admin, admin)


def test_require_raises_forbidden_naming_the_lowest_role() -> None:
    user = Principal(id=ME, role=Role.USER)
    with pytest.raises(Forbidden, match="requires the moderator role"):
        require(Action.CALCULATION_APPROVE, user)
    with pytest.raises(Forbidden, match="requires the admin role"):
        require(Action.CLUSTER_MANAGE, user)
    with pytest.raises(Forbidden, match="not yours"):
        require(Action.CALCULATION_CANCEL, user, Owned(OTHER), message="not yours")
    require(Action.CALCULATION_CANCEL, user, Owned(ME))  # no raise
    assert refusal(Action.USER_MANAGE) == "requires the moderator role"


def test_a_user_row_is_an_actor() -> None:
    """Services pass ``User`` rows (``id`` and ``role``); a role stored as text works too."""

    class Row:
        id = ME
        role = "moderator"

    assert may(Action.CALCULATION_APPROVE, Row())
    assert not may(Action.USER_ADMINISTER, Row())
