"""``POST /api/webhooks/stripe``: verify the signature on the raw body, then process once."""

from __future__ import annotations

import functools
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.background import BackgroundTasks
from starlette.concurrency import run_in_threadpool

from backend import event_store, invoices, metrics, webhooks
from backend.api.answers import WebhookAnswer
from backend.api.errors import PAYLOAD_TOO_LARGE, documented
from backend.errors import (
    CreditdeskError,
    InvalidSignature,
    MalformedEvent,
    RefusedEvent,
    StorageUnavailable,
    WebhooksNotConfigured,
)
from backend.outcomes import Outcome
from backend.payments.stripe_setup import WEBHOOK_PATH
from backend.services import Services

router = APIRouter()
log = logging.getLogger("creditdesk.payments")


@router.post(WEBHOOK_PATH, response_model=WebhookAnswer, responses=documented(
    WebhooksNotConfigured, InvalidSignature, MalformedEvent, PAYLOAD_TOO_LARGE, StorageUnavailable))
async def stripe_webhook(request: Request) -> Response:
    # The services straight from the app, not through a dependency: this route takes Stripe's bursts, and
    # resolving a dependency costs about as much as checking the signature (bench/webhooks.py).
    services: Services = request.app.state.services
    payload = await request.body()
    try:
        event = webhooks.verify(payload, request.headers.get("stripe-signature", ""),
                                services.settings.stripe_webhook_secret)
    except RefusedEvent as exc:  # signed, but never to be processed: kept, and 200 so that Stripe stops
        await run_in_threadpool(event_store.keep_refused, services.db, payload, exc)
        metrics.webhook_processed(Outcome.REFUSED)
        return answer(Outcome.REFUSED)
    except (InvalidSignature, MalformedEvent) as exc:
        await run_in_threadpool(event_store.keep_rejected, services.db, payload, exc)  # for support to see
        raise
    if event_store.known_duplicate(services.db, event):  # a retry of what this process did: no thread, no I/O
        metrics.webhook_processed(Outcome.DUPLICATE)
        return answer(Outcome.DUPLICATE)
    try:
        processed = await run_in_threadpool(
            webhooks.receive, services.db, event, payload, livemode=services.settings.stripe_livemode,
            sessions=services.provider.retrieve_session)
    except CreditdeskError:
        raise
    except Exception:
        # Nothing was committed; Stripe retries and the event is processed then.
        log.exception("payment webhook outcome=retry_later")
        raise StorageUnavailable("the event could not be processed now", retry_after=10) from None
    metrics.webhook_processed(processed.outcome)
    response = answer(processed.outcome)
    if processed.outcome in PAID and processed.order_id is not None:
        # Once Stripe has its answer: the invoice's links, and the names of the discount and tax the event does not
        # give (backend/invoices.py), never holding up the payment.
        reads = [read for read, needed in ((invoices.fill_order, _names_an_invoice(event)),
                                           (invoices.fill_names, _leaves_names_out(event))) if needed]
        if reads:
            response.background = later = BackgroundTasks()
            for read in reads:
                later.add_task(read, services, processed.order_id)
    return response


PAID = frozenset({Outcome.GRANTED, Outcome.ALREADY_GRANTED})


def _names_an_invoice(event: Any) -> bool:
    """Whether the event's session names its invoice (else there is nothing to read; reconcile reads any that
    only the session read at the pinned version named)."""
    invoice = event.get("data", {}).get("object", {}).get("invoice")
    return isinstance(invoice, str | dict) and bool(invoice)


def _leaves_names_out(event: Any) -> bool:
    """Whether the event's session has a discount or a tax without the breakdown that names them (Stripe's events
    never carry it: it comes only when the session is read with it expanded; the stub's always do)."""
    details = event.get("data", {}).get("object", {}).get("total_details")
    return isinstance(details, dict) and bool(details.get("amount_discount") or details.get("amount_tax")) \
        and "breakdown" not in details


@functools.cache
def _answer_body(outcome: str) -> bytes:
    return WebhookAnswer(received=True, outcome=outcome).model_dump_json().encode()


def answer(outcome: str) -> Response:
    """The 200 answer, its body made once per outcome through the route's declared model (``response_model``):
    a Response is not checked and serialized again per delivery, which Stripe's bursts would pay for."""
    return Response(_answer_body(outcome), media_type="application/json")
