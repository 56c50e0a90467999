"""Stripe events: verified, kept whole, and processed once, in the same transaction that records them.

An event's effects and its row in the event store (:mod:`backend.event_store`) commit together, so a crash or
an error leaves neither (and Stripe's retry processes it), while a duplicate finds the row and does nothing.
The row keeps the whole event with what processing did (outcome, detail, order), so that support can see and
replay it (:func:`replay`); a delivery that could not be processed (a bad signature, a malformed event, an
error) is kept as a failed delivery with its reason. The webhook, reconcile, replay and
the stub checkout all come through :func:`process_event`.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from backend import autotopup, clawbacks, event_store, fulfilment, orders
from backend.db import Database, utcnow
from backend.errors import (
    InvalidSignature,
    MalformedEvent,
    MalformedSession,
    RefusedEvent,
    SessionNotFound,
    UnknownEvent,
    UnknownTopup,
    WebhooksNotConfigured,
)
from backend.outcomes import DeliveryOutcome, Outcome
from backend.payments.base import STRIPE_API_VERSION, PaymentIntentState, SessionState

log = logging.getLogger("creditdesk.payments")

SESSION_EVENTS = frozenset({
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
})
REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"})
DISPUTE_EVENTS = frozenset({
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
})
CHARGE_EVENTS = frozenset({"charge.refunded"})
# An auto top-up's off-session payment (backend/autotopup.py); other PaymentIntents' events are ignored (a
# Checkout's payment is its session's events).
PAYMENT_INTENT_EVENTS = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed",
                                   "payment_intent.requires_action"})
HANDLED = SESSION_EVENTS | REFUND_EVENTS | DISPUTE_EVENTS | CHARGE_EVENTS | PAYMENT_INTENT_EVENTS

SIGNATURE_TOLERANCE_SECONDS = 300

# Outcomes of an event besides fulfilment's and clawbacks' own (granted, clawed_back, ...).


@dataclass(frozen=True)
class Processed:
    event_id: str
    type: str
    outcome: str  # an Outcome, or the order's new status where only its status moved
    detail: str = ""
    order_id: str | None = None
    user_id: int | None = None  # the order's user, and the credits the event granted: for its log line
    credits: int | None = None


def verify(payload: bytes, signature: str, secret: str | None) -> Any:
    """The event in ``payload`` once its ``Stripe-Signature`` is verified; checked before anything is parsed.

    A signature is refused when its time is more than the tolerance away from ours, in the past (a replay)
    or in the future. A signed body that can never be processed (not JSON, nested deeper than any event,
    a number beyond 64 bits, text that is not Unicode) is a MalformedEvent, so that Stripe does not retry it.
    """
    if not secret:
        raise WebhooksNotConfigured
    import stripe  # loaded at the first delivery: a stub-mode backend never needs the SDK

    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8", errors="replace"), signature, secret, SIGNATURE_TOLERANCE_SECONDS
        )
        in_the_future = _signed_at(signature) > time.time() + SIGNATURE_TOLERANCE_SECONDS
    except stripe.SignatureVerificationError as exc:
        log.warning("payment webhook outcome=rejected reason=bad_signature")
        raise InvalidSignature from exc
    if in_the_future:
        log.warning("payment webhook outcome=rejected reason=bad_signature")
        raise InvalidSignature
    try:
        event = json.loads(payload, parse_int=_int64, parse_constant=_no_constant)
    except RecursionError:
        raise MalformedEvent("the body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise MalformedEvent("the body is not JSON") from None
    check_values(event, payload)
    return event


MAX_DEPTH = 64  # Stripe's events nest a dozen levels at most
INT64 = 2**63


def _signed_at(signature: str) -> int:
    for item in signature.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    return 0


def _int64(text: str) -> int:
    value = int(text)
    if not -INT64 <= value < INT64:
        raise ValueError("an integer beyond 64 bits")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def check_values(event: Any, payload: bytes | None = None) -> None:
    """No deeper than MAX_DEPTH, and every string encodable (no lone surrogates from ``\\ud800``); a string
    holding NUL makes the event refused (RefusedEvent), once the whole event is known to be well formed.

    Given the body it was parsed from, most events are cleared from the bytes: a body in strict UTF-8 holds no
    lone surrogate written raw, and one without any ``\\u`` escape holds none written escaped, nor NUL (JSON
    has no other way to write NUL in a string), so only the depth is left to walk, container by container. The
    walk of every string (a third of a webhook's Python time) is for the bodies that escape.
    """
    if payload is not None and b"\\u" not in payload and _strict_utf8(payload):
        # A value is at most one deeper than the containers around it: fewer brackets in the whole body than
        # MAX_DEPTH (as most events have: a Checkout Session's has about 40) leave nothing to walk.
        if payload.count(b"{") + payload.count(b"[") >= MAX_DEPTH:
            _check_depth(event)
        return
    nul = False
    todo: list[tuple[Any, int]] = [(event, 1)]
    while todo:
        value, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise MalformedEvent("the body is nested too deeply")
        if isinstance(value, dict):
            todo.extend((item, depth + 1) for item in value.values())
            todo.extend((key, depth) for key in value)
        elif isinstance(value, list):
            todo.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise MalformedEvent("the body holds text that is not valid Unicode") from None
            nul = nul or "\x00" in value
    if nul:
        raise RefusedEvent("text holding the NUL character")


def _strict_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_depth(event: Any) -> None:
    """The depth rule of :func:`check_values` (a value inside a container is one deeper), walking containers only."""
    todo: list[tuple[Any, int]] = [(event, 1)]
    while todo:
        value, depth = todo.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        if children and depth >= MAX_DEPTH:
            raise MalformedEvent("the body is nested too deeply")
        todo.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


# How fulfilment reads a Checkout Session at the pinned API version: the provider's retrieve_session.
SessionLookup = Callable[[str], SessionState]


def receive(
    db: Database, event: Any, payload: bytes, *, livemode: bool, sessions: SessionLookup | None = None
) -> Processed:
    """Process a verified delivery once; keep it with its reason if it cannot be processed."""
    try:
        return process_event(db, event, livemode=livemode, body=payload.decode("utf-8", errors="replace"),
                             sessions=sessions)
    except MalformedEvent as exc:
        event_store.keep_failed(db, payload, valid=True, outcome=DeliveryOutcome.MALFORMED, error=str(exc), event=event)
        raise
    except Exception as exc:
        event_store.keep_failed(db, payload, valid=True, outcome=DeliveryOutcome.ERROR,
                                error=f"{type(exc).__name__}: {exc}"[:500], event=event)
        raise


def process_event(
    db: Database, event: Any, *, source: str = "webhook", livemode: bool = False, body: str | None = None,
    sessions: SessionLookup | None = None,
) -> Processed:
    """Apply one verified event and keep it; ``livemode`` is the mode of our Stripe key; ``sessions`` reads a
    Checkout Session at the pinned API version, for events rendered at another (see :func:`_as_pinned`)."""
    event_id, event_type, obj = _parts(event)
    if event_store.already_processed(db, event_id):
        # Stripe's retries of an event we have: answered from a read, without queueing for the write lock.
        event_store.recent.add(db, event_id)
        processed = Processed(event_id, event_type, Outcome.DUPLICATE)
        _log(processed, source)
        return processed
    current = _as_pinned(event, event_type, obj, sessions)  # before the write lock: it may ask Stripe

    def keep_and_apply(conn: Connection) -> Processed:
        if conn.dialect.name != "sqlite":  # transactions side by side: the claim makes a duplicate wait for this one
            if not event_store.claim(conn, event, event_id, event_type, obj, source=source, body=body):
                return Processed(event_id, event_type, Outcome.DUPLICATE)
            processed = _process(conn, event, event_type, obj, source, livemode, current)
            _note(conn, processed)
            return processed
        # SQLite's write lock keeps every other writer out until COMMIT: look, process, then keep the event with
        # its outcome in one INSERT (half the event store's writes of a claim and its note).
        if event_store.kept(conn, event_id):
            return Processed(event_id, event_type, Outcome.DUPLICATE)
        received_at = utcnow()
        processed = _process(conn, event, event_type, obj, source, livemode, current)
        event_store.keep(conn, event, event_id, event_type, obj, source=source, body=body, received_at=received_at,
                         outcome=processed.outcome, detail=processed.detail, order_id=processed.order_id)
        return processed

    # Stripe sends events in bursts: on SQLite those queued for the write lock commit together.
    processed = db.grouped(keep_and_apply)
    event_store.recent.add(db, event_id)  # committed: its retries need neither the write lock nor the database
    _log(processed, source)
    return processed


def _as_pinned(
    event: Mapping[str, Any], event_type: str, obj: Mapping[str, Any], sessions: SessionLookup | None
) -> SessionState | None:
    """The event's Checkout Session as Stripe renders it at the pinned API version, when the event was rendered
    at another (``None`` when it was not, or there is no provider to ask).

    Stripe renders a webhook at its endpoint's API version, and the Events API at the account's: under
    Adaptive Pricing a session of an older version carries the customer's currency and amount, which would
    not match the order. The session read now is the truth fulfilment decides on. When Stripe cannot be
    reached, PaymentProviderError goes up: the delivery fails with 503 and Stripe retries it."""
    version = event.get("api_version")
    if event_type not in SESSION_EVENTS or sessions is None or not isinstance(version, str) \
            or version == STRIPE_API_VERSION or not isinstance(obj.get("id"), str):
        return None
    try:
        return sessions(str(obj["id"]))
    except SessionNotFound:  # not one of ours at this provider: the event as it came is judged
        return None


def replay(db: Database, event_id: str, *, livemode: bool, sessions: SessionLookup | None = None) -> Processed:
    """Run a stored event through the same path again; a no-op where its effect is already in the ledger.

    Takes the kept event, or else the newest signed delivery of that id that failed to process.
    """
    body, stored = event_store.stored_body(db, event_id)
    if body is None:
        if stored:
            raise UnknownEvent(f"event {event_id} is known but its body was not kept (it came before Creditdesk kept "
                               "bodies, or is past the retention period)")
        raise UnknownEvent(f"no stored event {event_id}")
    try:
        event = json.loads(body)
        _parts(event)
    except (ValueError, RecursionError, MalformedEvent) as exc:
        raise UnknownEvent(f"the stored body of {event_id} is not an event that can be replayed "
                           f"({str(exc)[:100] or type(exc).__name__})") from None
    if not stored:
        return process_event(db, event, source="replay", livemode=livemode, body=body, sessions=sessions)
    _, event_type, obj = _parts(event)
    current = _as_pinned(event, event_type, obj, sessions)
    with db.transaction() as conn:
        processed = _process(conn, event, event_type, obj, "replay", livemode, current)
        _note(conn, processed, replayed=True)
    _log(processed, "replay")
    return processed


def _process(
    conn: Connection, event: Mapping[str, Any], event_type: str, obj: Mapping[str, Any], source: str, livemode: bool,
    current: SessionState | None = None,
) -> Processed:
    event_id = str(event["id"])
    if event.get("livemode") is not livemode and event.get("livemode") in (True, False):
        mode = "live" if event.get("livemode") else "test"
        return Processed(event_id, event_type, Outcome.REFUSED,
                         f"a {mode}-mode event, and this server's Stripe key is in the other mode",
                         _related_order_id(conn, event_type, obj))
    if event_type not in HANDLED:
        return Processed(event_id, event_type, Outcome.IGNORED, "not an event type Creditdesk acts on")
    created = event.get("created")
    as_of = created if isinstance(created, int) and not isinstance(created, bool) else 0
    if event_type in SESSION_EVENTS:
        try:
            session = SessionState.from_stripe(obj)
        except MalformedSession as exc:
            raise MalformedEvent(str(exc)) from exc
        if current is not None and current.id == session.id:
            session = current
        # The event's one line (_log) says what fulfilment did, with the order's user and credits.
        if event_type == "checkout.session.async_payment_failed":
            result = fulfilment.mark_failed(conn, session, source=source, logged_by_caller=True)
        else:
            result = fulfilment.apply_session(conn, session, source=source, logged_by_caller=True)
        order = result.order
        if order is None:
            return Processed(event_id, event_type, result.outcome, result.detail)
        return Processed(event_id, event_type, result.outcome, result.detail, order.id, order.user_id,
                         order.credits if result.outcome == Outcome.GRANTED else None)
    if event_type in PAYMENT_INTENT_EVENTS:
        return _topup_payment(conn, event_id, event_type, obj, source)
    if event_type in CHARGE_EVENTS:
        charge_news = clawbacks.charge_refunds_news(obj, as_of)
        if charge_news is None:
            return Processed(event_id, event_type, Outcome.IGNORED,
                             "the charge names no payment intent or refunded amount")
        return _money(conn, event_id, event_type, charge_news.payment_intent, charge_news.currency,
                      clawbacks.Cause("charge", charge_news.charge_id),
                      lambda: clawbacks.record_charge_refunds(conn, charge_news))
    if event_type in REFUND_EVENTS:
        refund = clawbacks.refund_news(obj, as_of)
        if refund is None:
            raise MalformedEvent("the refund lacks an id, amount, currency or status")
        payment_intent = refund.payment_intent or _payment_of_charge(conn, refund.charge_id)
        if payment_intent is None:
            return _charge_only(conn, event_id, event_type, refund.charge_id,
                                functools.partial(clawbacks.record_refund, conn, refund))
        refund = replace(refund, payment_intent=payment_intent)
        return _money(conn, event_id, event_type, payment_intent, refund.currency,
                      clawbacks.Cause("refund", refund.id), functools.partial(clawbacks.record_refund, conn, refund))
    dispute = clawbacks.dispute_news(obj, as_of)
    if dispute is None:
        raise MalformedEvent("the dispute lacks an id, amount, currency or status")
    payment_intent = dispute.payment_intent or _payment_of_charge(conn, dispute.charge_id)
    if payment_intent is None:
        return _charge_only(conn, event_id, event_type, dispute.charge_id,
                            functools.partial(clawbacks.record_dispute, conn, dispute))
    dispute = replace(dispute, payment_intent=payment_intent)
    return _money(conn, event_id, event_type, payment_intent, dispute.currency,
                  clawbacks.Cause("dispute", dispute.id), functools.partial(clawbacks.record_dispute, conn, dispute))


def _payment_of_charge(conn: Connection, charge_id: str | None) -> str | None:
    """A refund or dispute that names no payment intent is matched through its charge."""
    return clawbacks.payment_of_charge(conn, charge_id) if charge_id else None


def _charge_only(
    conn: Connection, event_id: str, event_type: str, charge_id: str | None, record: Callable[[], bool]
) -> Processed:
    """News naming a charge whose payment we do not know yet: kept, and matched by reconcile, which asks
    Stripe for the charge's payment (:func:`backend.reconcile.reconcile`)."""
    if charge_id is None:
        return Processed(event_id, event_type, Outcome.IGNORED,
                         "it names neither a payment intent nor a charge")
    record()
    return Processed(event_id, event_type, Outcome.RECORDED,
                     "it names only its charge, whose payment is not known yet; reconcile matches it")


def _topup_payment(conn: Connection, event_id: str, event_type: str, obj: Mapping[str, Any], source: str
                   ) -> Processed:
    topup_id = autotopup.topup_of_payment(obj)
    if topup_id is None:
        return Processed(event_id, event_type, Outcome.IGNORED, "not an auto top-up's payment")
    try:
        state = PaymentIntentState.from_stripe(obj)
    except MalformedSession as exc:
        raise MalformedEvent(str(exc)) from exc
    try:
        topup = autotopup.record(conn, topup_id, state, datetime.now(UTC), source=source)
    except UnknownTopup:
        return Processed(event_id, event_type, Outcome.UNKNOWN_ORDER, "no top-up has this payment")
    # The top-up's status is the outcome (succeeded, failed, in_flight): fulfilment counted any credits granted.
    return Processed(event_id, event_type, topup.status, f"auto top-up {topup.id}", topup.order_id, topup.user_id)


def _related_order_id(conn: Connection, event_type: str, obj: Mapping[str, Any]) -> str | None:
    """The order an event is about, if we have it (so that support finds even the events we refused)."""
    if event_type in SESSION_EVENTS:
        order = orders.by_session(conn, str(obj.get("id")))
    else:
        payment_intent = clawbacks.payment_intent_of(obj)
        order = orders.by_payment_intent(conn, payment_intent) if payment_intent else None
    return order.id if order else None


def _money(
    conn: Connection, event_id: str, event_type: str, payment_intent: str, currency: str | None,
    cause: clawbacks.Cause, record: Any,
) -> Processed:
    """A refund or dispute: keep the news, then settle the payment's order if it is known and paid."""
    clawbacks.lock_payment(conn, payment_intent)  # before the order is read: see lock_payment
    order = orders.by_payment_intent(conn, payment_intent, lock=True)
    if order is not None and currency is not None and currency != order.currency:
        return Processed(event_id, event_type, Outcome.REFUSED,
                         f"in {currency.upper()}, and the order was paid in {order.currency.upper()}", order.id)
    record()
    if order is None:
        # The news may come before the payment's own event: kept, and applied at fulfilment.
        return Processed(event_id, event_type, Outcome.RECORDED, "no paid order has this payment yet")
    settlement = clawbacks.settle(conn, order, cause)
    if settlement.outcome == Outcome.NOT_PAID:
        return Processed(event_id, event_type, Outcome.RECORDED, "the order is not paid yet", order.id)
    detail = f"{abs(settlement.credits)} credits; order {settlement.order.status}" if settlement.credits else ""
    return Processed(event_id, event_type, settlement.outcome, detail, order.id)


def _note(conn: Connection, processed: Processed, *, replayed: bool = False) -> None:
    event_store.note(conn, processed.event_id, processed.outcome, processed.detail, processed.order_id,
                     replayed=replayed)


def _parts(event: Any) -> tuple[str, str, Mapping[str, Any]]:
    if not isinstance(event, Mapping):
        raise MalformedEvent("the event is not a JSON object")
    event_id, event_type = event.get("id"), event.get("type")
    data = event.get("data")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise MalformedEvent("the event has no id")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 255:
        raise MalformedEvent("the event has no type")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        raise MalformedEvent("the event has no data.object")
    return event_id, event_type, obj


def _log(processed: Processed, source: str) -> None:
    """The event's one line in the log: what it did, to which order and user (and the credits it granted)."""
    if processed.credits is None:
        log.info("payment event=%s event_id=%s order=%s user=%s source=%s outcome=%s", processed.type,
                 processed.event_id, processed.order_id, processed.user_id, source, processed.outcome)
    else:
        log.info("payment event=%s event_id=%s order=%s user=%s source=%s outcome=%s credits=%d", processed.type,
                 processed.event_id, processed.order_id, processed.user_id, source, processed.outcome,
                 processed.credits)
