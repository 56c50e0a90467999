"""``/api/auth``: register, login, logout, and resetting a forgotten password."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Response

from backend import accounts, expiry, password_resets
from backend.api.answers import AuthAnswer, PasswordResetAnswer
from backend.api.deps import ClientAddressDep, ServicesDep, TokenDep, UserDep
from backend.api.errors import BODY_ERRORS, INVALID_TEXT, SIGNED_IN, STORAGE, documented
from backend.api.offload import BoundedWork
from backend.api.schemas import LoginBody, PasswordResetBody, PasswordResetConfirmBody, RegisterBody
from backend.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidResetCode,
    RateLimited,
    ServerBusy,
)
from backend.services import Services

# Every route answers 400 invalid_text to NUL in its query (app.RefuseNul), whatever it takes.
router = APIRouter(prefix="/api/auth", responses=documented(INVALID_TEXT))

# Sign-up and sign-in hash a password (argon2, slow and memory-hungry on purpose): they run here, as many
# at once as accounts allows, and a burst waits its turn without taking the server's shared threads.
_password_work = BoundedWork("passwords", accounts.HASHES_AT_ONCE, max_waiting=200)


def _register(services: Services, email: str, password: str) -> dict[str, object]:
    bonus = services.catalogue.signup_bonus
    user = accounts.register(services.db, email, password,
                             None if bonus is None else lambda conn, user_id: expiry.give_bonus(conn, user_id, bonus))
    token = accounts.issue_token(services.db, user, services.settings.token_ttl_seconds)
    return {"token": token, "user": user.as_json()}


def _login(services: Services, email: str, password: str, account: str) -> dict[str, object]:
    # The ceiling per account counts wrong passwords only: the owner's own sign-ins, from one place as often as
    # its limit lets them, never take the account towards it. Checked here, on the password threads, so that
    # guesses racing past the check overshoot it by at most HASHES_AT_ONCE per replica.
    ceiling = (services.settings.signin_limit_per_account, "signin-account", account)
    services.limiter.check(*ceiling)
    try:
        user = accounts.authenticate(services.db, email, password)
    except InvalidCredentials:
        with contextlib.suppress(RateLimited):  # filled meanwhile by another guess: this one is still wrong
            services.limiter.hit(*ceiling)
        raise
    token = accounts.issue_token(services.db, user, services.settings.token_ttl_seconds)
    return {"token": token, "user": user.as_json()}


@router.post("/register", status_code=201, response_model=AuthAnswer,
             responses=documented(BODY_ERRORS, EmailTaken, RateLimited, ServerBusy, STORAGE))
async def register(body: RegisterBody, services: ServicesDep, address: ClientAddressDep) -> dict[str, object]:
    services.limiter.hit(services.settings.auth_limit_per_address, "auth-address", address)
    return await _password_work.run(_register, services, body.email, body.password)


@router.post("/login", response_model=AuthAnswer,
             responses=documented(BODY_ERRORS, InvalidCredentials, RateLimited, ServerBusy, STORAGE))
async def login(body: LoginBody, services: ServicesDep, address: ClientAddressDep) -> dict[str, object]:
    settings = services.settings
    services.limiter.hit(settings.auth_limit_per_address, "auth-address", address)
    # Per account *and* address: guesses from one place cannot lock the owner out from another; and per account
    # from everywhere, a higher ceiling on wrong passwords from many places at once (see _login).
    email = accounts.normalise_email(body.email)
    account = ("signin", email, address)
    services.limiter.hit(settings.signin_limit_per_account_and_address, *account)
    answer = await _password_work.run(_login, services, body.email, body.password, email)
    services.limiter.clear(settings.signin_limit_per_account_and_address, *account)
    return answer


@router.post("/logout", status_code=204, response_class=Response, response_model=None,
             responses=documented(SIGNED_IN))
def logout(services: ServicesDep, user: UserDep, token: TokenDep) -> Response:
    accounts.revoke_token(services.db, token)
    return Response(status_code=204)


# The one answer to every request for a code, whether or not the address has an account.
RESET_ANSWER = {
    "status": "sent_if_registered",
    "message": "If an account exists for this email, a code to choose a new password is on its way. It works once, "
               "for 15 minutes.",
    "expiresInSeconds": int(password_resets.CODE_TTL.total_seconds()),
}


@router.post("/password-reset", status_code=202, response_model=PasswordResetAnswer,
             responses=documented(BODY_ERRORS, RateLimited, ServerBusy))
async def password_reset(body: PasswordResetBody, services: ServicesDep, address: ClientAddressDep
                         ) -> dict[str, object]:
    """Send a one-time code to the account's address. The answer is the same for every address."""
    settings = services.settings
    services.limiter.hit(settings.auth_limit_per_address, "auth-address", address)
    services.limiter.hit(settings.reset_limit_per_address, "reset-address", address)
    # Counted for every address alike: a limit reached says nothing about whether the account exists.
    services.limiter.hit(settings.reset_limit_per_email, "reset-email", accounts.normalise_email(body.email))
    # Everything else (finding the account, hashing a code, writing it, mailing it) runs after the answer, on the
    # mail queue, for every address alike: the answer's work and time say nothing about the account, and a slow or
    # failing mail server changes nothing the person sees (SendingQueue says why not Starlette's background tasks).
    email = body.email
    services.sending.submit("a password reset code",
                            lambda: password_resets.request_reset(services.db, services.mailer, email))
    return RESET_ANSWER


def _confirm(services: Services, email: str, code: str, password: str) -> dict[str, object]:
    reset = password_resets.confirm_reset(services.db, email, code, password, services.settings.token_ttl_seconds)
    return {"token": reset.token, "user": reset.user.as_json()}


@router.post("/password-reset/confirm", response_model=AuthAnswer,
             responses=documented(BODY_ERRORS, InvalidResetCode, RateLimited, ServerBusy, STORAGE))
async def password_reset_confirm(body: PasswordResetConfirmBody, services: ServicesDep,
                                 address: ClientAddressDep) -> dict[str, object]:
    """The code and a new password: every earlier sign-in ends, and this answer is a new one, as login's."""
    settings = services.settings
    services.limiter.hit(settings.auth_limit_per_address, "auth-address", address)
    services.limiter.hit(settings.signin_limit_per_account_and_address, "reset-confirm",
                         accounts.normalise_email(body.email), address)
    return await _password_work.run(_confirm, services, body.email, body.code, body.password)
