"""Stripe events: each processed once, in the same transaction that records it.

An event's effects and its row in ``webhook_events`` commit together, so a crash or an error
leaves neither (and Stripe's retry processes it), while a duplicate finds the row and does nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import stripe
from sqlalchemy import select

from backend import fulfilment
from backend.db import Database, insert_ignoring_duplicates, utcnow
from backend.errors import InvalidSignature, MalformedEvent, MalformedSession, WebhooksNotConfigured
from backend.payments.base import SessionState
from backend.schema import webhook_events

log = logging.getLogger("creditdesk.payments")

SESSION_EVENTS = {
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
}
HANDLED = SESSION_EVENTS | {"charge.refunded"}
SIGNATURE_TOLERANCE_SECONDS = 300


def verify(payload: bytes, signature: str, secret: str | None) -> Any:
    """The event in ``payload`` once its ``Stripe-Signature`` is verified; checked before anything is parsed.

    A signature is refused when its time is more than the tolerance away from ours, in the past (a replay)
    or in the future. A signed body that can never be processed (not JSON, nested deeper than any event,
    a number beyond 64 bits, text that is not Unicode) is a MalformedEvent, so that Stripe does not retry it.
    """
    if not secret:
        raise WebhooksNotConfigured
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8", errors="replace"), signature, secret, SIGNATURE_TOLERANCE_SECONDS
        )
        if _signed_at(signature) > time.time() + SIGNATURE_TOLERANCE_SECONDS:
            raise stripe.SignatureVerificationError("timestamp in the future", signature, payload)
    except stripe.SignatureVerificationError as exc:
        log.warning("payment webhook outcome=rejected reason=bad_signature")
        raise InvalidSignature from exc
    try:
        event = json.loads(payload, parse_int=_int64, parse_constant=_no_constant)
    except RecursionError:
        raise MalformedEvent("the body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise MalformedEvent("the body is not JSON") from None
    _check_values(event)
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


def _check_values(event: Any) -> None:
    """No deeper than MAX_DEPTH, and every string encodable (no lone surrogates from ``\\ud800``)."""
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


def process_event(db: Database, event: Any, *, source: str = "webhook") -> str:
    """Apply one event (a parsed, already verified Stripe event) and return its outcome."""
    event_id, event_type, obj = _parts(event)
    if _already_processed(db, event_id):
        # Stripe's retries of an event we have: answered from a read, without queueing for the write lock.
        _recent.add(db, event_id)
        log.info("payment event=%s event_id=%s outcome=duplicate", event_type, event_id)
        return "duplicate"
    with db.transaction() as conn:
        # Claim the event first: on PostgreSQL a concurrent delivery of the same event waits here for
        # this transaction and then finds the row, so it is processed once whichever replica gets it.
        if not insert_ignoring_duplicates(
            conn, webhook_events, {"id": event_id, "type": event_type, "outcome": "processing", "received_at": utcnow()}
        ):
            outcome = "duplicate"
        else:
            outcome = _dispatch(conn, event_type, obj, source)
            conn.execute(webhook_events.update().where(webhook_events.c.id == event_id).values(outcome=outcome))
    _recent.add(db, event_id)  # committed: its retries need neither the write lock nor the database
    session_id = obj.get("id") if event_type in SESSION_EVENTS else obj.get("payment_intent")
    order_id = (obj.get("metadata") or {}).get("orderId") if isinstance(obj.get("metadata"), Mapping) else None
    user_id = obj.get("client_reference_id")
    log.info(
        "payment event=%s event_id=%s order=%s session=%s user=%s outcome=%s",
        event_type, event_id, order_id, session_id, user_id, outcome,
    )
    return outcome


def known_duplicate(db: Database, event: Any) -> bool:
    """Whether this process has seen ``event`` processed already: answered from memory, with no I/O, so the
    HTTP layer can answer a retry without a thread or the database. A miss proves nothing (another replica,
    a restart): :func:`process_event` then checks the database."""
    event_id = event.get("id") if isinstance(event, Mapping) else None
    if not isinstance(event_id, str) or event_id not in _recent.ids(db):
        return False
    log.info("payment event=%s event_id=%s outcome=duplicate", event.get("type"), event_id)
    return True


class _RecentEvents:
    """The ids of the last RECENT events whose effects this process saw committed, per database."""

    RECENT = 10_000

    def __init__(self) -> None:
        self._ids: dict[str, OrderedDict[str, None]] = {}
        self._lock = threading.Lock()

    def ids(self, db: Database) -> OrderedDict[str, None]:
        return self._ids.get(str(db.url), OrderedDict())

    def add(self, db: Database, event_id: str) -> None:
        with self._lock:
            ids = self._ids.setdefault(str(db.url), OrderedDict())
            ids[event_id] = None
            if len(ids) > self.RECENT:
                ids.popitem(last=False)


_recent = _RecentEvents()


def _already_processed(db: Database, event_id: str) -> bool:
    """Whether the event's effects are committed (a row still "processing" is another transaction's,
    not yet committed: that case goes on to the write path, which waits for it)."""
    with db.read() as conn:
        outcome = conn.execute(select(webhook_events.c.outcome).where(webhook_events.c.id == event_id)).scalar()
    return outcome is not None and outcome != "processing"


def _parts(event: Any) -> tuple[str, str, Mapping[str, Any]]:
    if not isinstance(event, Mapping):
        raise MalformedEvent("the event is not a JSON object")
    event_id, event_type = event.get("id"), event.get("type")
    data = event.get("data")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise MalformedEvent("the event has no id")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("the event has no type")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        raise MalformedEvent("the event has no data.object")
    return event_id, event_type, obj


def _dispatch(conn: Any, event_type: str, obj: Mapping[str, Any], source: str) -> str:
    if event_type not in HANDLED:
        return "ignored"
    if event_type == "charge.refunded":
        payment_intent, charge_id = obj.get("payment_intent"), obj.get("id")
        refunded = obj.get("amount_refunded")
        if isinstance(payment_intent, Mapping):
            payment_intent = payment_intent.get("id")
        if not isinstance(payment_intent, str) or not isinstance(refunded, int) or isinstance(refunded, bool):
            return "ignored_no_payment_intent"
        return fulfilment.record_refund(
            conn, payment_intent=payment_intent, charge_id=str(charge_id), amount_refunded=max(refunded, 0)
        )
    try:
        session = SessionState.from_stripe(obj)
    except MalformedSession as exc:
        raise MalformedEvent(str(exc)) from exc
    if event_type == "checkout.session.async_payment_failed":
        return fulfilment.mark_failed(conn, session, source=source).outcome
    return fulfilment.apply_session(conn, session, source=source).outcome
