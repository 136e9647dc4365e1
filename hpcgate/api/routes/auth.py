"""Login, token refresh (rotating cookie), logout and the caller's own profile."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import APIRouter, Cookie, Request, Response
from fastapi.responses import JSONResponse

from hpcgate.api.deps import BearerCredentials, CurrentUser, SessionDep, SettingsDep
from hpcgate.api.schemas.auth import LoginRequest, TokenResponse
from hpcgate.api.schemas.users import MeOut, MeUpdate, UserOut
from hpcgate.auth import lockout, rate_limit, refresh
from hpcgate.auth.jwt import issue_access_token, verify_access_token
from hpcgate.auth.passwords import hash_password, needs_rehash, verify_password
from hpcgate.db.models import User
from hpcgate.errors import Forbidden, InvalidInput, Unauthorized
from hpcgate.services.users import check_password, get_user_by_email
from hpcgate.settings import Settings

router = APIRouter(prefix="/auth", tags=["auth"])

RefreshCookie = Annotated[str | None, Cookie(alias=refresh.COOKIE_NAME, max_length=256)]


@cache
def _dummy_hash() -> str:
    """Verified when the e-mail is unknown, so both failures take the same time."""
    return hash_password("dummy-password-for-timing")


def _set_refresh_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        refresh.COOKIE_NAME,
        token,
        max_age=settings.auth.refresh_token_days * 86400,
        path=refresh.COOKIE_PATH,
        httponly=True,
        secure=settings.auth.cookie_secure,
        samesite="strict",
    )


def _clear_refresh_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        refresh.COOKIE_NAME,
        path=refresh.COOKIE_PATH,
        httponly=True,
        secure=settings.auth.cookie_secure,
        samesite="strict",
    )


def _token_response(user: User, settings: Settings) -> TokenResponse:
    issued = issue_access_token(user.id, user.role, settings)
    return TokenResponse(
        access_token=issued.token, expires_in=issued.expires_in, user=UserOut.model_validate(user)
    )


@router.post(
    "/login",
    response_model=TokenResponse,
    responses={429: {"description": "too many attempts; see Retry-After"}},
)
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> TokenResponse | JSONResponse:
    """Exchange e-mail and password for an access token; sets the refresh cookie.

    Rate-limited per client address, per e-mail and client address, and for the whole
    service, and locked after repeated failed passwords of the account: 429 with
    ``Retry-After``, decided before any password is hashed.
    """
    client_ip = request.client.host if request.client else None
    factory = request.app.state.sessionmaker
    try:
        rate_limit.hit_all(factory, rate_limit.login_limits(body.email, client_ip, settings.auth))
    except rate_limit.LoginRateLimited as exc:
        # The error mapper knows no headers; this is the one error that needs one.
        return JSONResponse(
            exc.to_body(),
            status_code=exc.status_code,
            headers={"Retry-After": str(exc.retry_after)},
        )
    user = get_user_by_email(session, body.email)
    if user is None:
        verify_password(_dummy_hash(), body.password)
        raise Unauthorized("invalid e-mail or password")
    lockout.check_not_locked(user)
    if not verify_password(user.password_hash, body.password):
        lockout.record_failure(factory, user.id, settings.auth)
        raise Unauthorized("invalid e-mail or password")
    if user.blocked:
        raise Forbidden("this account is blocked")
    lockout.record_success(user)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(body.password)
    issued = refresh.issue_refresh_token(session, user, settings)
    session.commit()
    rate_limit.reset(factory, rate_limit.login_key(body.email, client_ip))
    _set_refresh_cookie(response, issued.token, settings)
    return _token_response(user, settings)


@router.post("/refresh", response_model=TokenResponse)
def refresh_token(
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    hpcgate_refresh: RefreshCookie = None,
) -> TokenResponse:
    """Rotate the refresh cookie and return a new access token.

    Reusing an already-rotated refresh token revokes every token of that login (401).
    """
    user, issued = refresh.rotate_refresh_token(session, hpcgate_refresh, settings)
    _set_refresh_cookie(response, issued.token, settings)
    return _token_response(user, settings)


@router.post("/logout", status_code=204)
def logout(
    session: SessionDep,
    settings: SettingsDep,
    credentials: BearerCredentials,
    hpcgate_refresh: RefreshCookie = None,
) -> Response:
    """Revoke this login's refresh tokens and the user's access tokens issued so far, and
    clear the cookie (always 204). Other logins of the user refresh their access token."""
    user_id = None
    if credentials is not None and credentials.credentials:
        try:
            user_id = verify_access_token(credentials.credentials, settings).user_id
        except Unauthorized:
            user_id = None  # an expired or foreign token: nothing more to revoke
    refresh.logout(session, hpcgate_refresh, user_id=user_id)
    out = Response(status_code=204)
    _clear_refresh_cookie(out, settings)
    return out


@router.get("/me", response_model=MeOut)
def read_me(user: CurrentUser) -> User:
    """The caller's own account and permissions (``hpcgate.domain.access``)."""
    return user


@router.patch("/me", response_model=MeOut)
def update_me(
    body: MeUpdate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    hpcgate_refresh: RefreshCookie = None,
) -> User:
    """Change own name, notification level or password (the current password is required).

    A password change revokes every access token issued so far and every refresh family
    (copies of this login's cookie included); the caller's own login continues with a new
    refresh cookie set on this response (POST /auth/refresh gives the new access token).
    """
    if body.full_name is not None:
        user.full_name = body.full_name.strip()
    if body.notify_level is not None:
        user.notify_level = body.notify_level
    if body.new_password is not None:
        if not body.current_password or not verify_password(
            user.password_hash, body.current_password
        ):
            raise InvalidInput("current_password: incorrect")
        check_password(body.new_password)
        user.password_hash = hash_password(body.new_password)
        current = refresh.find_token(session, hpcgate_refresh)
        own_login = (
            current is not None
            and current.user_id == user.id
            and current.revoked_at is None
            and current.rotated_at is None
        )
        refresh.revoke_all_sessions(session, user)
        if own_login:
            issued = refresh.issue_refresh_token(session, user, settings)
            _set_refresh_cookie(response, issued.token, settings)
    elif body.current_password is not None:
        raise InvalidInput("current_password: only needed with new_password")
    session.commit()
    return user
