"""The FastAPI application: routes, the error handlers, and a cap on request bodies."""

from __future__ import annotations

import json
import logging
from types import ModuleType

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import __version__, health, metrics
from backend.api import alerts, auth, auto_topup, billing, credits, holds, pages, support_reports, webhooks
from backend.api.answers import HealthAnswer, LiveAnswer, ReadyAnswer
from backend.api.errors import (
    INVALID_TEXT,
    PAYLOAD_TOO_LARGE,
    Answer,
    HttpRefusal,
    documented,
    install_error_handlers,
    respond,
)
from backend.payments.stripe_setup import WEBHOOK_PATH  # the one path Stripe delivers to
from backend.services import Services

log = logging.getLogger("creditdesk")

MAX_BODY_BYTES = 1024 * 1024
NOT_READY = Answer(503, "not_ready", "This server cannot serve now: its database is unavailable or not migrated.")


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Creditdesk backend", version=__version__, docs_url=None, redoc_url=None)
    app.state.services = services
    _add_routes(app, webhooks)  # tried before our other routes: Stripe's deliveries come in bursts
    app.add_middleware(RefuseNul)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(CountRequests)
    # X-Request-ID: the caller's, when it is a UUID, else a new one; on the answer and on every log line.
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")

    @app.get("/api/health", response_model=HealthAnswer, responses=documented(INVALID_TEXT))
    async def health_summary() -> dict[str, object]:
        # async and free of I/O: answers at once whatever the provider or the disk are doing.
        return {"status": "ok", "payments": services.provider.name, "version": __version__,
                "paymentProvider": services.gateway.health(),
                "storage": "available" if services.db.healthy else "unavailable"}

    @app.get("/api/health/live", response_model=LiveAnswer, responses=documented(INVALID_TEXT))
    async def live() -> dict[str, object]:
        """The process serves: a supervisor restarts it only when this stops answering."""
        return {"status": "ok", "version": __version__}

    @app.get("/api/health/ready", response_model=ReadyAnswer, responses=documented(INVALID_TEXT, NOT_READY))
    async def ready() -> dict[str, object] | JSONResponse:
        """The database answers at the schema this code needs: a load balancer sends traffic only then."""
        found = await run_in_threadpool(health.readiness, services)
        if found.ready:
            return found.as_json()
        return JSONResponse({**found.as_json(), "error": {"code": NOT_READY.code, "message": NOT_READY.message}},
                            status_code=NOT_READY.status, headers={"Retry-After": str(health.RETRY_AFTER_SECONDS)})

    # Routes are tried in order, each against the path: the host application's spends and holds first, after
    # Stripe's webhook (above).
    for module in (credits, holds, auth, billing, auto_topup, alerts, support_reports, pages):
        _add_routes(app, module)

    install_error_handlers(app)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, QuietDeliveries) for f in access.filters):
        access.addFilter(QuietDeliveries())
    return app


def _add_routes(app: FastAPI, module: ModuleType) -> None:
    """The module's router's routes on the app itself, as they are (each has its prefix, responses and dependencies
    from its router already), rather than through include_router: FastAPI 0.165 matches an included router's routes
    through a layer of its own that walks every router's routes again on each request (_get_routes_version), 790K
    instructions of a spend's request and 81K of a webhook's under callgrind (bench/instructions.py). /openapi.json
    is the same."""
    app.router.routes.extend(module.router.routes)


class QuietDeliveries(logging.Filter):
    """Leaves out uvicorn's access line of a Stripe delivery answered 2xx: the event's own line (``payment
    event=... outcome=...``, backend.webhooks) says what came and what was done, so each event logs one line.
    A delivery refused (4xx) or failed (5xx) keeps its access line. The record is dropped in the thread that
    makes it, before it is queued for the log's writer (backend.logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and isinstance(args[4], int):
            return not (200 <= args[4] < 300 and args[2].partition("?")[0] == WEBHOOK_PATH)
        return True


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
            metrics.request_answered(scope["method"], template, status)


class RefuseNul:
    """Refuse text holding NUL (U+0000) anywhere in a request, in one place, before any route reads it: in the
    path, the query, or a JSON body (raw or escaped as ``\\u0000``). PostgreSQL's text cannot hold it (it
    would be a 500 there, and SQLite would keep text that no other program reads back whole), and no field of
    the API has a use for it. 400 ``invalid_text``; nothing is read further, nothing written, and the log
    says only how long the request's query was (see backend.logs). Stripe's webhook is left to its own path,
    which answers a signed event with NUL as refused (backend.webhooks)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == WEBHOOK_PATH:
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or _nul_in_query(scope.get("query_string", b"")):
            await respond(INVALID_TEXT)(scope, receive, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        try:
            while True:  # at most MAX_BODY_BYTES (BodyLimit, outside, counts it): read it whole, then replay it
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
        except HttpRefusal as refused:  # too large
            await respond(refused.answer)(scope, _no_receive, send)
            return
        if _nul_in_json(body):
            await respond(INVALID_TEXT)(scope, _no_receive, send)
            return
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)


def _nul_in_query(query: bytes) -> bool:
    return b"%00" in query or b"\x00" in query


def _nul_in_json(body: bytes) -> bool:
    """Whether a JSON body holds NUL in a string (a cheap look first; parsed only when it may)."""
    if b"\x00" in body:
        return True
    if b"\\u0000" not in body.lower():
        return False
    try:
        value = json.loads(body)
    except ValueError:
        return False  # not JSON: the route answers invalid_json
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return False


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
                    raise HttpRefusal(PAYLOAD_TOO_LARGE)
            return message

        await self.app(scope, limited_receive, send)

    async def _too_large(self, send: Send) -> None:
        response = respond(PAYLOAD_TOO_LARGE)
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
