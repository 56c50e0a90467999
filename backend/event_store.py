"""Every Stripe event we receive, kept whole with what processing did, and every delivery that failed.

``webhook_events`` holds one row per event id, written in the transaction that processes the event with its
outcome, detail and order, so that a duplicate finds the row and does nothing, and support can see and replay
it. On PostgreSQL the row is claimed (``processing``) before the event is processed and noted after, in that
transaction: the claim is what makes a concurrent delivery of the same event on another connection wait and
then find it. On SQLite the write lock already keeps every other writer out until COMMIT, so the event is
looked up, processed, then kept with its outcome in one INSERT (:func:`kept`, :func:`keep`).
``failed_deliveries`` keeps what could not be processed (a bad signature, a malformed or refused event, an
error) with why. Both are pruned after the retention period (:func:`prune`). Processing itself is
:mod:`backend.webhooks`; this module only keeps and reads.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from backend import prepared
from backend.db import Database, hot_insert_ignoring, insert_ignoring_duplicates, utcnow
from backend.errors import CreditdeskError, InvalidSignature, MalformedEvent, RefusedEvent
from backend.outcomes import DeliveryOutcome, Outcome
from backend.schema import failed_deliveries, webhook_events

log = logging.getLogger("creditdesk.payments")

# What is kept of a body whose signature did not verify: enough for support to see what it was.
UNVERIFIED_BODY_LIMIT = 4096


# -- events processed ---------------------------------------------------------------------------------------

# Built once (each event runs them; building a statement costs more than running it).
_NOTE = prepared.hot("an event noted", webhook_events.update().where(webhook_events.c.id == sa.bindparam("event_id")))
_NOTE_REPLAY = prepared.hot("an event noted again", _NOTE.values(attempts=webhook_events.c.attempts + 1))
_OUTCOME = prepared.hot("an event's outcome",
                        sa.select(webhook_events.c.outcome).where(webhook_events.c.id == sa.bindparam("event_id")))
hot_insert_ignoring("an event claimed", webhook_events)
_KEEP = prepared.hot("an event kept", webhook_events.insert())


def claim(conn: Connection, event: Mapping[str, Any], event_id: str, event_type: str, obj: Mapping[str, Any],
          *, source: str, body: str | None) -> bool:
    """Keep the event, whole, as being processed; False if it is kept already (a duplicate). On PostgreSQL a
    concurrent delivery of the same event waits here for the first transaction and then finds the row, so it
    is processed once whichever replica gets it. Its outcome follows with :func:`note`."""
    return insert_ignoring_duplicates(conn, webhook_events, _row(
        event, event_id, event_type, obj, source=source, body=body, outcome=Outcome.PROCESSING)) is not None


def kept(conn: Connection, event_id: str) -> bool:
    """Whether the event has its row, read inside the write transaction (SQLite: see :func:`keep`)."""
    return prepared.run(conn, _OUTCOME, {"event_id": event_id}).first() is not None


def keep(conn: Connection, event: Mapping[str, Any], event_id: str, event_type: str, obj: Mapping[str, Any], *,
         source: str, body: str | None, received_at: str, outcome: str, detail: str, order_id: str | None) -> None:
    """Keep the event, whole, with what processing it did, in one INSERT: for SQLite, whose write lock keeps every
    other writer out from :func:`kept` to COMMIT (so no claim is needed to make a duplicate wait). An id kept
    meanwhile all the same (another process's writer not going through that lock) fails the transaction with
    IntegrityError: nothing of the event is committed twice."""
    row = _row(event, event_id, event_type, obj, source=source, body=body, outcome=outcome, received_at=received_at)
    row.update(detail=detail or None, order_id=order_id, processed_at=utcnow())
    prepared.run(conn, _KEEP, row)


def _row(event: Mapping[str, Any], event_id: str, event_type: str, obj: Mapping[str, Any], *, source: str,
         body: str | None, outcome: str, received_at: str | None = None) -> dict[str, Any]:
    created = event.get("created")
    return {
        "id": event_id, "type": event_type, "outcome": outcome, "received_at": received_at or utcnow(),
        "body": body if body is not None else json.dumps(event), "livemode": event.get("livemode") is True,
        "created": created if isinstance(created, int) and not isinstance(created, bool) else None,
        "source": source, "object_id": obj.get("id") if isinstance(obj.get("id"), str) else None,
    }


def note(conn: Connection, event_id: str, outcome: str, detail: str, order_id: str | None, *,
         replayed: bool = False) -> None:
    """Record what processing the event did (a replay also counts the attempt)."""
    prepared.run(conn, _NOTE_REPLAY if replayed else _NOTE, {
        "event_id": event_id, "outcome": outcome, "detail": detail or None, "order_id": order_id,
        "processed_at": utcnow()})


def already_processed(db: Database, event_id: str) -> bool:
    """Whether the event's effects are committed (a row still "processing" is another transaction's,
    not yet committed: that case goes on to the write path, which waits for it)."""
    outcome = db.peek(_OUTCOME, {"event_id": event_id})
    return outcome is not None and outcome != Outcome.PROCESSING


def stored_body(db: Database, event_id: str) -> tuple[str | None, bool]:
    """The body to replay an event from: the kept event's, or else that of the newest signed delivery of that id
    that failed to process; and whether the event has a row (its body may be gone past the retention period)."""
    with db.read() as conn:
        body = conn.execute(sa.select(webhook_events.c.body).where(webhook_events.c.id == event_id)).scalar()
        stored = body is not None or conn.execute(
            sa.select(webhook_events.c.id).where(webhook_events.c.id == event_id)).first() is not None
        if body is None:
            body = conn.execute(
                sa.select(failed_deliveries.c.body).where(
                    failed_deliveries.c.event_id == event_id, failed_deliveries.c.signature_valid.is_(True))
                .order_by(failed_deliveries.c.id.desc()).limit(1)
            ).scalar()
    return body, stored


# -- what this process saw committed --------------------------------------------------------------------------

class RecentEvents:
    """The ids of the last RECENT events whose effects this process saw committed, per database."""

    RECENT = 10_000

    def __init__(self) -> None:
        self._ids: dict[str, OrderedDict[str, None]] = {}
        self._lock = threading.Lock()

    def ids(self, db: Database) -> OrderedDict[str, None]:
        return self._ids.get(db.url_text, OrderedDict())

    def add(self, db: Database, event_id: str) -> None:
        with self._lock:
            ids = self._ids.setdefault(db.url_text, OrderedDict())
            ids[event_id] = None
            if len(ids) > self.RECENT:
                ids.popitem(last=False)


recent = RecentEvents()


def known_duplicate(db: Database, event: Any) -> bool:
    """Whether this process has seen ``event`` processed already: answered from memory, with no I/O, so the
    HTTP layer can answer a retry without a thread or the database. A miss proves nothing (another replica,
    a restart): processing then checks the database."""
    event_id = event.get("id") if isinstance(event, Mapping) else None
    if not isinstance(event_id, str) or event_id not in recent.ids(db):
        return False
    log.info("payment event=%s event_id=%s outcome=duplicate", event.get("type"), event_id)
    return True


# -- deliveries that failed -------------------------------------------------------------------------------------

def keep_refused(db: Database, payload: bytes, error: RefusedEvent) -> None:
    """Keep a signed event that will never be processed, for support (its text made safe to store): a failed
    delivery ``malformed``, as reconcile keeps the same event from Stripe's Events API."""
    log.warning("payment webhook outcome=refused reason=nul length=%d", len(payload))
    keep_failed(db, payload, valid=True, outcome=DeliveryOutcome.MALFORMED,
                error=f"the event holds {error}; never processed", event=_parsed(payload))


def _parsed(payload: bytes) -> Any:
    """The event in a body already verified and parsed once (for its id and type, NUL written out)."""
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        return None


def keep_rejected(db: Database, payload: bytes, error: InvalidSignature | MalformedEvent) -> None:
    """Keep a delivery that failed verification, with why (an unverified body only in part)."""
    if isinstance(error, InvalidSignature):
        keep_failed(db, payload[:UNVERIFIED_BODY_LIMIT], valid=False, outcome=DeliveryOutcome.REJECTED_SIGNATURE,
                    error="the Stripe-Signature header is missing, stale or does not match the body")
    else:
        keep_failed(db, payload, valid=True, outcome=DeliveryOutcome.MALFORMED, error=str(error))


def keep_malformed(db: Database, event: Any, reason: str) -> None:
    """Keep an event that cannot be processed (from reconcile: signed by Stripe's API, not by a header), whole,
    as a failed delivery support sees; it is never processed."""
    try:
        body = json.dumps(event, default=str).encode()
    except (TypeError, ValueError):
        body = repr(event).encode()
    keep_failed(db, body, valid=True, outcome=DeliveryOutcome.MALFORMED, error=reason[:500], event=event)


def keep_failed(db: Database, body: bytes, *, valid: bool, outcome: DeliveryOutcome, error: str,
                event: Any = None) -> None:
    """Keep a delivery that was not processed, with why; where the database is what failed, the log has it."""
    event_id = event_type = None
    if isinstance(event, Mapping):
        event_id = event.get("id") if isinstance(event.get("id"), str) else None
        event_type = event.get("type") if isinstance(event.get("type"), str) else None
    try:
        with db.transaction() as conn:
            conn.execute(failed_deliveries.insert().values(
                received_at=utcnow(), signature_valid=valid, event_id=_storable(event_id or "")[:255] or None,
                event_type=_storable(event_type or "")[:255] or None, outcome=outcome, error=_storable(error),
                body=_storable(body.decode("utf-8", errors="replace")),
            ))
    except (SQLAlchemyError, CreditdeskError, OSError):  # the database may be what failed: the log still has it
        log.warning("payment webhook outcome=%s not_kept=true", outcome)


def _storable(text: str) -> str:
    """Text any database keeps whole: NUL (which PostgreSQL's text refuses) written as ``\\x00``."""
    return text.replace("\x00", "\\x00")


def prune(db: Database, *, before: str) -> tuple[int, int]:
    """Drop what is past the retention period: failed deliveries, and the bodies of processed events
    (their rows stay, so that a very late duplicate is still a no-op). Returns (deliveries, bodies)."""
    with db.transaction() as conn:
        deliveries = conn.execute(failed_deliveries.delete().where(failed_deliveries.c.received_at < before))
        bodies = conn.execute(webhook_events.update().where(
            webhook_events.c.received_at < before, webhook_events.c.body.is_not(None)).values(body=None))
        return deliveries.rowcount, bodies.rowcount
