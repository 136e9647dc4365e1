"""Login and token responses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from hpcgate.api.schemas import SafeStr
from hpcgate.api.schemas.users import UserOut


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[SafeStr, Field(min_length=1, max_length=320)]
    password: Annotated[SafeStr, Field(min_length=1, max_length=1024)]


class TokenResponse(BaseModel):
    """The refresh token is not here: it is set as the httpOnly ``hpcgate_refresh`` cookie."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token *type*
    expires_in: int = Field(description="seconds until the access token expires")
    user: UserOut
