"""``/api/auth``: register, login, logout."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from backend import accounts
from backend.api.deps import ServicesDep, TokenDep, UserDep
from backend.api.schemas import LoginBody, RegisterBody

router = APIRouter(prefix="/api/auth")


def _limit(services: ServicesDep, request: Request, email: str) -> None:
    address = request.client.host if request.client else "unknown"
    services.limiter.hit(services.settings.auth_limit_per_address, "auth-address", address)
    services.limiter.hit(services.settings.auth_limit_per_email, "auth-email", accounts.normalise_email(email))


@router.post("/register", status_code=201)
def register(body: RegisterBody, services: ServicesDep, request: Request) -> dict[str, object]:
    _limit(services, request, body.email)
    user = accounts.register(services.db, body.email, body.password)
    token = accounts.issue_token(services.db, user, services.settings.token_ttl_seconds)
    return {"token": token, "user": user.as_json()}


@router.post("/login")
def login(body: LoginBody, services: ServicesDep, request: Request) -> dict[str, object]:
    _limit(services, request, body.email)
    user = accounts.authenticate(services.db, body.email, body.password)
    token = accounts.issue_token(services.db, user, services.settings.token_ttl_seconds)
    return {"token": token, "user": user.as_json()}


@router.post("/logout", status_code=204)
def logout(services: ServicesDep, user: UserDep, token: TokenDep) -> Response:
    accounts.revoke_token(services.db, token)
    return Response(status_code=204)
