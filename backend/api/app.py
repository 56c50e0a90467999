"""The FastAPI application: routes, the error handlers, and a cap on request bodies."""

from __future__ import annotations

import logging

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import __version__, health, metrics
from backend.api import alerts, auth, billing, credits, pages, webhooks
from backend.api.errors import PAYLOAD_TOO_LARGE, Answer, ApiError, documented, install_error_handlers, respond
from backend.services import Services

log = logging.getLogger("creditdesk")

MAX_BODY_BYTES = 1024 * 1024
NOT_READY = Answer(503, "not_ready", "This server cannot serve now: its database is unavailable or not migrated.")


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Creditdesk backend", version=__version__, docs_url=None, redoc_url=None)
    app.state.services = services
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(CountRequests)
    # X-Request-ID: the caller's, when it is a UUID, else a new one; on the answer and on every log line.
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")

    @app.get("/api/health")
    async def health_summary() -> dict[str, object]:
        # async and free of I/O: answers at once whatever the provider or the disk are doing.
        return {"status": "ok", "payments": services.provider.name, "version": __version__,
                "paymentProvider": services.payments.health(),
                "storage": "available" if services.db.healthy else "unavailable"}

    @app.get("/api/health/live")
    async def live() -> dict[str, object]:
        """The process serves: a supervisor restarts it only when this stops answering."""
        return {"status": "ok", "version": __version__}

    @app.get("/api/health/ready", responses=documented(NOT_READY))
    async def ready() -> JSONResponse:
        """The database answers at the schema this code needs: a load balancer sends traffic only then."""
        found = await run_in_threadpool(health.readiness, services)
        if found.ready:
            return JSONResponse(found.as_json())
        return JSONResponse({**found.as_json(), "error": {"code": NOT_READY.code, "message": NOT_READY.message}},
                            status_code=NOT_READY.status, headers={"Retry-After": str(health.RETRY_AFTER_SECONDS)})

    # The webhook first: routes are tried in order, and Stripe's deliveries come in bursts.
    for module in (webhooks, auth, billing, credits, alerts, pages):
        app.include_router(module.router)

    install_error_handlers(app)
    return app


class CountRequests:
    """Count every answer by method, route template (not the raw path: ids would explode the series) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def noting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.REQUESTS.labels(method=scope["method"], route=template, status=str(status)).inc()


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
