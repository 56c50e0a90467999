"""The FastAPI application: routes, the contract's error shape, and a cap on request bodies."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import __version__
from backend.api import auth, billing, credits, pages, webhooks
from backend.errors import ApiError, error_body
from backend.services import Services

log = logging.getLogger("creditdesk")

MAX_BODY_BYTES = 1024 * 1024

STATUS_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                413: "payload_too_large", 415: "unsupported_media_type"}


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Creditdesk backend", version=__version__, docs_url=None, redoc_url=None)
    app.state.services = services
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "payments": services.provider.name, "version": __version__}

    for module in (auth, billing, credits, webhooks, pages):
        app.include_router(module.router)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(error.get("type") == "json_invalid" for error in errors):
            return JSONResponse(error_body("invalid_json", "The request body is not valid JSON."), 400)
        fields = sorted({".".join(str(p) for p in error.get("loc", ())[1:]) or "body" for error in errors})
        return JSONResponse(
            error_body("invalid_fields", f"These fields are missing or invalid: {', '.join(fields)}."), 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = "There is nothing at this address." if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(error_body(code, message), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal_error", "Something went wrong on our side; nothing was changed."),
                            500)

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
                    raise ApiError(413, "payload_too_large", "The request body is too large.")
            return message

        await self.app(scope, limited_receive, send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(error_body("payload_too_large", "The request body is too large."), 413)
        await response({"type": "http"}, _no_receive, send)  # type: ignore[arg-type]


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
