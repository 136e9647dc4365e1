"""Users as the API shows them, and what admins/moderators/users may send to change them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, computed_field

from hpcgate.api.schemas import SafeStr
from hpcgate.domain.access import NotifyLevel, Role, permissions_of

Email = Annotated[SafeStr, Field(min_length=3, max_length=320, examples=["ada@lab.org"])]
Password = Annotated[SafeStr, Field(min_length=8, max_length=1024)]
FullName = Annotated[SafeStr, Field(max_length=200)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    full_name: str
    role: Role
    notify_level: NotifyLevel
    blocked: bool
    created_at: datetime
    project: str | None = None  # what their core-hours count towards (docs/accounting.md)


class MeOut(UserOut):
    """The caller's own account and what they may do (``GET /auth/me``): the portal shows
    what the permissions allow, the API enforces the same table (``hpcgate.domain.access``)."""

    @computed_field(  # type: ignore[prop-decorator]
        description=(
            "Actions the caller may perform: `<action>` on any resource, `<action>:own` only "
            "on their own (e.g. `calculation.cancel:own`), `<action>:lower_role` only on "
            "accounts whose role ranks below theirs (e.g. `user.manage:lower_role`)."
        ),
        examples=[["calculation.read", "calculation.create", "calculation.cancel:own"]],
    )
    @property
    def permissions(self) -> list[str]:
        return permissions_of(self.role)


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "ada@lab.org", "password": "a long passphrase", "role": "user"}]
        },
    )

    email: Annotated[Email, Field(pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")]
    password: Password
    full_name: FullName = ""
    role: Role = Role.USER
    notify_level: NotifyLevel = NotifyLevel.ERROR


class UserUpdate(BaseModel):
    """Admin changes to another account (role, name, mail level)."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    full_name: FullName | None = None
    notify_level: NotifyLevel | None = None
    # The research group or project for usage reports; "" clears it.
    project: str | None = Field(default=None, max_length=64, pattern=r"^[^\x00-\x1f]*$")


class PasswordSet(BaseModel):
    """A moderator or admin sets another user's password (their sessions are revoked)."""

    model_config = ConfigDict(extra="forbid")

    password: Password


class MeUpdate(BaseModel):
    """What anyone may change on their own account; a new password needs the current one."""

    model_config = ConfigDict(extra="forbid")

    full_name: FullName | None = None
    notify_level: NotifyLevel | None = None
    current_password: Annotated[SafeStr, Field(max_length=1024)] | None = None
    new_password: Password | None = None


class UserPage(BaseModel):
    items: list[UserOut]
    total: int
