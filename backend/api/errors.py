"""The one place where the backend's errors become HTTP answers in the contract's shape.

``{"error": {"code": "<snake_case>", "message": "<human sentence>"}}``, with the status of
:data:`ANSWERS`. A retryable error (:class:`backend.errors.Retryable`) adds ``Retry-After``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import errors

log = logging.getLogger("creditdesk")


@dataclass(frozen=True)
class Answer:
    status: int
    code: str
    message: str  # a str.format template; ``exc`` is the error being answered
    headers: dict[str, str] = field(default_factory=dict)


TRY_AGAIN = "Please try again in a moment."

ANSWERS: dict[type[errors.CreditdeskError], Answer] = {
    errors.NotSignedIn: Answer(401, "unauthorized", "Sign in first: the request has no valid bearer token.",
                               {"WWW-Authenticate": "Bearer"}),
    errors.InvalidCredentials: Answer(401, "invalid_credentials", "The email or the password is wrong."),
    errors.InvalidResetCode: Answer(
        400, "invalid_code",
        "This code is wrong, expired or already used. Ask for a new code if the last one no longer works."),
    errors.MailUnavailable: Answer(503, "mail_unavailable",
                                   "The email could not be sent just now; nothing was changed. " + TRY_AGAIN),
    errors.EmailTaken: Answer(409, "email_taken", "An account with this email already exists; sign in instead."),
    errors.RateLimited: Answer(429, "rate_limited", "Too many requests; try again in {exc.wait}."),
    errors.UnknownPack: Answer(404, "unknown_pack", "There is no credit pack with the id {exc.pack_id!r}."),
    errors.InvalidReturnUrl: Answer(
        400, "invalid_return_url", "returnUrl must be http://127.0.0.1:<port>/<path> or http://[::1]:<port>/<path>."),
    errors.UnknownSession: Answer(404, "unknown_session",
                                  "No checkout session with that id belongs to this account."),
    errors.InvalidTaxId: Answer(
        422, "invalid_tax_id", "The tax id is not a valid number of its type; check both and save them again."),
    errors.PaymentProcessing: Answer(
        409, "payment_processing",
        "This checkout was completed with a payment the bank is still processing (which can take days), so it "
        "can no longer be cancelled: the credits are added when the payment clears, and nothing is charged if "
        "it fails."),
    errors.PaymentProviderUnavailable: Answer(
        503, "payment_provider_unavailable",
        "The payment provider could not be reached; nothing was charged. " + TRY_AGAIN),
    errors.PaymentProviderRejected: Answer(
        502, "payment_provider_rejected",
        "The payment provider refused this request; trying again will not help. Nothing was charged; "
        "please contact support."),
    # Not found at the provider although we have the order: the provider is not the one we expect.
    errors.SessionNotFound: Answer(
        502, "payment_provider_rejected",
        "The payment provider does not know this checkout; trying again will not help. Please contact support."),
    errors.PaymentProviderError: Answer(
        503, "payment_provider_unavailable",
        "The payment provider could not be reached; nothing was charged. " + TRY_AGAIN),
    errors.MalformedSession: Answer(
        503, "payment_provider_unavailable",
        "The payment provider gave an answer we cannot use; nothing was charged. " + TRY_AGAIN),
    errors.InsufficientCredits: Answer(402, "insufficient_credits",
                                       "This needs {exc.amount} credits and {exc.available}."),
    errors.InvalidAutoTopup: Answer(422, "invalid_auto_topup", "These auto top-up settings cannot work: {exc.reason}."),
    errors.UnknownTopup: Answer(404, "unknown_topup", "No top-up with that id belongs to this account."),
    errors.TopupNotUndoable: Answer(
        409, "topup_not_undoable", "This top-up cannot be undone: it is {exc.status}, not a paid top-up."),
    errors.UndoExpired: Answer(
        409, "undo_expired",
        "This top-up can no longer be undone: Undo is offered for 24 hours after it was paid (until {exc.until})."),
    errors.NothingToUndo: Answer(
        409, "nothing_to_undo", "Every credit of this top-up has been spent: there is nothing left to refund."),
    errors.UnknownHold: Answer(404, "unknown_hold", "No hold with that id belongs to this account."),
    errors.HoldClosed: Answer(
        409, "hold_closed",
        "This hold is {exc.status}: a hold is settled or voided once, while it is open, and an expired hold has "
        "released its credits."),
    errors.AmountAboveHold: Answer(
        422, "amount_above_hold",
        "A hold is settled for at most what it reserved: {exc.amount} is more than its {exc.held} credits."),
    errors.DescriptionRequired: Answer(
        422, "description_required",
        "Say what these credits are for: this service asks every spend for a description."),
    errors.IdempotencyConflict: Answer(409, "idempotency_key_reused",
                                       "This idempotency key was already used for a different spend."),
    errors.SpendCapReached: Answer(
        403, "spend_cap_reached",
        "This spend of {exc.amount} credits would go over your {exc.period_word} cap: {exc.used} of {exc.cap} "
        "credits are already spent {exc.this_period}. Raise the cap or wait until it resets."),
    errors.ConfirmationRequired: Answer(
        428, "confirmation_required",
        "This spend of {exc.amount} credits needs your confirmation. {exc.why} Repeat it with the "
        "confirmation token to go ahead."),
    errors.InvalidDateRange: Answer(422, "invalid_range", "The date range cannot be used: {exc.reason}."),
    errors.WebhooksNotConfigured: Answer(
        400, "webhooks_not_configured",
        "This server has no STRIPE_WEBHOOK_SECRET, so it cannot accept Stripe events."),
    errors.InvalidSignature: Answer(400, "invalid_signature",
                                    "The Stripe-Signature header is missing, stale or does not match the body."),
    errors.MalformedEvent: Answer(400, "malformed_event", "The event cannot be processed: {exc}."),
    errors.RefusedEvent: Answer(400, "refused_event", "The event will not be processed: it holds {exc}."),
    # Support's errors (the admin commands); answered here too should an admin route ever raise them.
    errors.UnknownEvent: Answer(404, "unknown_event", "There is no stored Stripe event with that id."),
    errors.UnknownUser: Answer(404, "unknown_user", "There is no account with that email."),
    errors.UnknownOrder: Answer(404, "unknown_order", "There is no order with that id."),
    errors.InvalidSince: Answer(422, "invalid_since", "Give the period as minutes, hours or days, such as 72h."),
    errors.InvalidAdjustment: Answer(422, "invalid_adjustment", "The adjustment is not valid: {exc}."),
    errors.AdjustmentBelowZero: Answer(409, "adjustment_below_zero", "The adjustment was not made: {exc}."),
    errors.NoDatabase: Answer(503, "no_database", "The server's database is not there; nothing was changed."),
    errors.ServerBusy: Answer(503, "server_busy", "The server is busy. " + TRY_AGAIN),
    errors.StorageUnavailable: Answer(503, "temporarily_unavailable",
                                      "The server cannot reach its storage just now; nothing was changed. "
                                      + TRY_AGAIN),
}
# Answers of the HTTP layer itself (no domain error behind them).
INVALID_JSON = Answer(400, "invalid_json", "The request body is not valid JSON.")
INVALID_TEXT = Answer(400, "invalid_text", "Text may not contain the NUL character (U+0000).")
INVALID_FIELDS = Answer(422, "invalid_fields", "These fields are missing or invalid: {fields}.")
PAYLOAD_TOO_LARGE = Answer(413, "payload_too_large", "The request body is too large.")
NOT_FOUND = Answer(404, "not_found", "There is nothing at this address.")
INTERNAL = Answer(500, "internal_error", "Something went wrong on our side; nothing was changed.")
# Starlette's own refusals (routing, methods), by status.
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
              413: "payload_too_large", 415: "unsupported_media_type"}


class ErrorDetail(BaseModel):
    code: str = Field(description="What went wrong, in snake_case; clients decide on this.")
    message: str = Field(description="A sentence for a person.")
    details: dict[str, Any] | None = Field(None, description="Facts a client needs, where there are some.")


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: ErrorDetail


# The answers that many routes share, for documented().
BODY_ERRORS = (INVALID_JSON, INVALID_TEXT, INVALID_FIELDS, PAYLOAD_TOO_LARGE)
QUERY_ERRORS = (INVALID_TEXT, INVALID_FIELDS)
SIGNED_IN = (errors.NotSignedIn, errors.StorageUnavailable)
STORAGE = (errors.StorageUnavailable,)
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.",
                               "schema": {"type": "integer", "minimum": 1}}}


def documented(*sources: Answer | type[errors.CreditdeskError] | tuple[Any, ...]) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each error status it can answer, with the error body, its codes and
    (for 429 and 503) the Retry-After header, taken from the same table the answers come from."""
    codes: dict[int, set[str]] = {}
    for source in _flatten(sources):
        answer = source if isinstance(source, Answer) else ANSWERS[source]
        codes.setdefault(answer.status, set()).add(answer.code)
    return {
        status: {"model": ErrorBody, "description": "Error: " + ", ".join(f"`{c}`" for c in sorted(names)),
                 **({"headers": RETRY_AFTER} if status in (429, 503) else {})}
        for status, names in sorted(codes.items())
    }


def documented_for_non_json(*sources: Answer | type[errors.CreditdeskError] | tuple[Any, ...]
                            ) -> dict[int | str, dict[str, Any]]:
    """:func:`documented`, for a route whose own answer is not JSON (a page, the CSV export): its error answers
    are JSON all the same and say so, where FastAPI would put the error body under the route's media type.
    (The reference resolves: the JSON routes put ErrorBody in the components.)"""
    found = documented(*sources)
    for response in found.values():
        del response["model"]
        response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return found


def _flatten(sources: tuple[Any, ...]) -> list[Any]:
    flat: list[Any] = []
    for source in sources:
        flat.extend(_flatten(source) if isinstance(source, tuple) else [source])
    return flat


class HttpRefusal(Exception):
    """An answer the HTTP layer gives by itself (not a domain error), raised from middleware."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.message)
        self.answer = answer


def error_body(code: str, message: str, details: dict[str, object] | None = None) -> dict[str, dict[str, object]]:
    """The contract's error body; ``details`` (facts a client needs, such as a cap and when it resets) when given."""
    error: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def answer_for(exc: errors.CreditdeskError) -> Answer:
    for cls in type(exc).__mro__:
        answer = ANSWERS.get(cls)
        if answer is not None:
            return answer
    return INTERNAL


def response_for(exc: errors.CreditdeskError) -> JSONResponse:
    answer = answer_for(exc)
    headers = dict(answer.headers)
    if isinstance(exc, errors.Retryable):
        headers["Retry-After"] = str(exc.retry_after)
    return respond(answer, headers, details=exc.details(), exc=exc)


def respond(answer: Answer, headers: dict[str, str] | None = None, details: dict[str, object] | None = None,
            **context: Any) -> JSONResponse:
    message = answer.message.format(**context) if context else answer.message
    return JSONResponse(error_body(answer.code, message, details), answer.status,
                        headers=headers or answer.headers or None)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the contract's shape; nothing unexpected leaves as a traceback."""

    @app.exception_handler(errors.CreditdeskError)
    async def domain_error(request: Request, exc: errors.CreditdeskError) -> JSONResponse:
        return response_for(exc)

    @app.exception_handler(HttpRefusal)
    async def api_error(request: Request, exc: HttpRefusal) -> JSONResponse:
        return respond(exc.answer)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(problem.get("type") == "json_invalid" for problem in problems):
            return respond(INVALID_JSON)
        fields = sorted({".".join(str(p) for p in problem.get("loc", ())[1:]) or "body" for problem in problems})
        return respond(INVALID_FIELDS, fields=", ".join(fields))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return respond(NOT_FOUND)
        code = HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return respond(INTERNAL)
