"""The FastAPI application: routes, the error handlers, and a cap on request bodies."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import __version__
from backend.api import alerts, auth, billing, credits, pages, webhooks
from backend.api.errors import PAYLOAD_TOO_LARGE, ApiError, install_error_handlers, respond
from backend.services import Services

log = logging.getLogger("creditdesk")

MAX_BODY_BYTES = 1024 * 1024


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Creditdesk backend", version=__version__, docs_url=None, redoc_url=None)
    app.state.services = services
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    @app.get("/api/health")
    async def health() -> dict[str, object]:
        # async and free of I/O: answers at once whatever the provider or the disk are doing.
        return {"status": "ok", "payments": services.provider.name, "version": __version__,
                "paymentProvider": services.payments.health(),
                "storage": "available" if services.db.healthy else "unavailable"}

    # The webhook first: routes are tried in order, and Stripe's deliveries come in bursts.
    for module in (webhooks, auth, billing, credits, alerts, pages):
        app.include_router(module.router)

    install_error_handlers(app)
    return app


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not they declare a length."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise ApiError(PAYLOAD_TOO_LARGE)
            return message

        await self.app(scope, limited_receive, send)

    async def _too_large(self, send: Send) -> None:
        response = respond(PAYLOAD_TOO_LARGE)
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
