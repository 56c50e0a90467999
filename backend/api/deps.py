"""Dependencies shared by the routes: the services and the signed-in user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend import accounts
from backend.accounts import User
from backend.api.client_address import client_address
from backend.errors import NotSignedIn
from backend.services import Services


# async: FastAPI would otherwise run these (which do no I/O) through its threadpool, a thread hop per request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# Declares the scheme in /openapi.json; the checks, and the contract's 401 answer, are ours.
bearer_scheme = HTTPBearer(auto_error=False, scheme_name="bearer",
                           description="The token that register and login answer, as `Authorization: Bearer <token>`.")


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> str:
    token = credentials.credentials.strip() if credentials is not None else ""
    if not token or len(token) > 512:
        raise NotSignedIn
    return token


def current_user(
    services: Annotated[Services, Depends(get_services)], token: Annotated[str, Depends(bearer_token)]
) -> User:
    return signed_in(services, token)


def signed_in(services: Services, token: str) -> User:
    """The token's user (a database read: on a worker thread), or NotSignedIn."""
    user = accounts.user_for_token(services.db, token)
    if user is None:
        raise NotSignedIn
    return user


async def get_client_address(request: Request) -> str:
    services: Services = request.app.state.services
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.getlist("x-forwarded-for"), services.settings.trusted_proxies)


ServicesDep = Annotated[Services, Depends(get_services)]
ClientAddressDep = Annotated[str, Depends(get_client_address)]
UserDep = Annotated[User, Depends(current_user)]
TokenDep = Annotated[str, Depends(bearer_token)]
