"""``POST /api/webhooks/stripe``: verify the signature on the raw body, then process once."""

from __future__ import annotations

import json
import logging

import stripe
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from backend import webhooks
from backend.api.deps import ServicesDep
from backend.errors import ApiError

router = APIRouter()
log = logging.getLogger("creditdesk.payments")

SIGNATURE_TOLERANCE_SECONDS = 300


@router.post("/api/webhooks/stripe")
async def stripe_webhook(request: Request, services: ServicesDep) -> Response:
    secret = services.settings.stripe_webhook_secret
    if not secret:
        raise ApiError(400, "webhooks_not_configured",
                       "This server has no STRIPE_WEBHOOK_SECRET, so it cannot accept Stripe events.")
    payload = await request.body()
    header = request.headers.get("stripe-signature", "")
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8", errors="replace"), header, secret, SIGNATURE_TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError:
        log.warning("payment webhook outcome=rejected reason=bad_signature")
        raise ApiError(400, "invalid_signature",
                       "The Stripe-Signature header is missing, stale or does not match the body.") from None
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed_event", "The body is not a JSON Stripe event.") from None
    try:
        outcome = await run_in_threadpool(webhooks.process_event, services.db, event)
    except webhooks.MalformedEvent as exc:
        raise ApiError(400, "malformed_event", f"The event cannot be processed: {exc}.") from None
    except Exception:
        # Nothing was committed; Stripe retries and the event is processed then.
        log.exception("payment webhook outcome=retry_later")
        raise ApiError(503, "temporarily_unavailable", "The event could not be processed now; retry later.",
                       {"Retry-After": "10"}) from None
    return Response(content=json.dumps({"received": True, "outcome": outcome}), media_type="application/json")
