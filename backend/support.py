"""Support's view of the backend: the plain functions behind the admin commands.

``creditdesk-backend user|adjust|events|replay|reconcile|check`` render what these return, as text or
JSON. Each reads or writes through the same modules as the API, so an adjustment is a ledger entry
like any other and a replay goes through the webhook's own path.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from backend import accounts, expiry, grants, holds, ledger, orders, support_reports
from backend.accounts import User
from backend.db import Database, iso_utc
from backend.entries import Entry
from backend.errors import AdjustmentBelowZero, InvalidAdjustment, UnknownOrder, UnknownUser
from backend.orders import Order
from backend.schema import adjustment_notes, failed_deliveries, webhook_events
from backend.support_reports import SupportReport

log = logging.getLogger("creditdesk.support")

MAX_ADJUSTMENT = 1_000_000_000
ADJUSTMENT_PREFIX = "adj:"


@dataclass(frozen=True)
class StoredEvent:
    id: str
    type: str
    outcome: str
    detail: str | None
    order_id: str | None
    object_id: str | None
    source: str | None
    livemode: bool | None
    created: int | None
    received_at: str
    processed_at: str | None
    attempts: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "outcome": self.outcome, "detail": self.detail,
                "orderId": self.order_id, "objectId": self.object_id, "source": self.source,
                "livemode": self.livemode, "created": self.created, "receivedAt": self.received_at,
                "processedAt": self.processed_at, "attempts": self.attempts}


@dataclass(frozen=True)
class FailedDelivery:
    id: int
    received_at: str
    signature_valid: bool
    event_id: str | None
    event_type: str | None
    outcome: str
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "receivedAt": self.received_at, "signatureValid": self.signature_valid,
                "eventId": self.event_id, "eventType": self.event_type, "outcome": self.outcome, "error": self.error}


@dataclass(frozen=True)
class UserReport:
    user: User
    balance: int
    orders: list[Order]
    entries: list[Entry]
    events: list[StoredEvent]
    notes: dict[int, str] = field(default_factory=dict)  # support's notes on adjustments, by entry id
    reports: list[SupportReport] = field(default_factory=list)  # what the user sent from Help, newest first
    open_holds: list[holds.Hold] = field(default_factory=list)  # the open ones: what they reserve is not available
    reserved: int = 0
    grants: list[grants.Grant] = field(default_factory=list)  # with credits, in the burn order
    as_of: datetime = field(default_factory=lambda: datetime.now(UTC))  # when the holds were read


def _user(conn: Connection, email: str) -> User:
    user = accounts.find_user(conn, email)
    if user is None:
        raise UnknownUser("no account has that email")
    return user


def user_report(db: Database, email: str, *, entries: int = 20, events: int = 50, reports: int = 10) -> UserReport:
    """Everything support needs to answer "where are my credits?" for one account."""
    with db.read() as conn:
        user = _user(conn, email)
        found = orders.by_user(conn, user.id)
        recent = ledger.history(conn, user.id, limit=entries)[0]
        adjusted = [e.id for e in recent if e.type == "adjustment"]
        rows = conn.execute(sa.select(adjustment_notes.c.entry_id, adjustment_notes.c.note)
                            .where(adjustment_notes.c.entry_id.in_(adjusted))).all() if adjusted else []
        notes = {int(row.entry_id): str(row.note) for row in rows}
        now = datetime.now(UTC)
        held = holds.open_holds(conn, user.id, now)
        credits = expiry.view(conn, user.id, now)
        return UserReport(
            user=user, balance=credits.balance, orders=found, entries=recent, grants=credits.grants,
            events=_events(conn, webhook_events.c.order_id.in_([o.id for o in found]), events) if found else [],
            notes=notes, reports=support_reports.recent(conn, user.id, reports), open_holds=held,
            reserved=sum(hold.amount for hold in held), as_of=now,
        )


# What the user's history says of an adjustment when support gives no public note.
ADJUSTMENT_DESCRIPTION = "Adjustment by support"


def check_adjustment(amount: int, reason: str, key: str | None, public_note: str | None) -> tuple[str, str]:
    """Refuse a bad adjustment before anything is opened (InvalidAdjustment); returns the note and the
    description the user's history shows."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0 or abs(amount) > MAX_ADJUSTMENT:
        raise InvalidAdjustment(f"the amount must be a whole number of credits, not zero, at most {MAX_ADJUSTMENT:,}")
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise InvalidAdjustment("give a reason of 1 to 500 characters")
    if key is not None and not 1 <= len(key) <= 200:
        raise InvalidAdjustment("the key must be 1 to 200 characters")
    public = (public_note or "").strip() or ADJUSTMENT_DESCRIPTION
    if len(public) > 500:
        raise InvalidAdjustment("give a public note of at most 500 characters")
    return reason, public


def adjust(
    db: Database, email: str, amount: int, reason: str, key: str | None = None, *, public_note: str | None = None,
    allow_negative: bool = False, promotional: bool = False, expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[Entry, bool]:
    """An ``adjustment`` entry of ``amount`` credits; the same key twice adjusts once. Returns (entry, new).

    ``reason`` is support's note, kept with the entry for support only; the user's history shows
    ``public_note``, or "Adjustment by support". A balance taken below zero needs ``allow_negative``
    (AdjustmentBelowZero says so, with the figures, in the same transaction that would have posted it)."""
    reason, public = check_adjustment(amount, reason, key, public_note)
    moment = now or datetime.now(UTC)
    if (promotional or expires_at is not None) and amount < 0:
        raise InvalidAdjustment("only credits given (a positive amount) are promotional or expire")
    if expires_at is not None and expires_at <= moment:
        raise InvalidAdjustment("the expiry must be in the future")
    reference = ADJUSTMENT_PREFIX + (key if key is not None else secrets.token_hex(8))
    with db.transaction() as conn:
        user = _user(conn, email)
        existing = ledger.find(conn, user.id, "adjustment", reference)
        if existing is not None:
            if existing.amount != amount:
                raise InvalidAdjustment(f"the key was used for an adjustment of {existing.amount}, not {amount}")
            return existing, False
        ledger.locked_balance(conn, user.id)
        found = expiry.sweep_user(conn, user.id, moment)  # grants past expiry first: they are not there to take
        balance = ledger.balance(conn, user.id)
        if amount < 0 and balance + amount < 0 and not allow_negative:
            raise AdjustmentBelowZero(balance, balance + amount)
        # Given: a grant of its own; taken: in the burn order, below zero (allowed) a debt.
        allocation: grants.Allocation = grants.NewGrant(
            kind=grants.PROMOTIONAL if promotional else grants.PAID, source="adjustment", description=public,
            expires_at=iso_utc(expires_at) if expires_at is not None else None) if amount > 0 else grants.Consume(found)
        entry = ledger.post(conn, user_id=user.id, type="adjustment", amount=amount, reference=reference,
                            description=public, allocation=allocation)
        assert entry is not None
        conn.execute(adjustment_notes.insert().values(entry_id=entry.id, note=reason))
    log.info("adjustment user=%s amount=%d entry=%s", user.id, amount, entry.id)
    return entry, True


def find_events(
    db: Database, *, order_id: str | None = None, session_id: str | None = None, type: str | None = None,
    limit: int = 200,
) -> list[StoredEvent]:
    """Stored events, newest first: those of an order (by id or by its Checkout Session), of a type, or all."""
    e = webhook_events.c
    conditions: list[Any] = []
    with db.read() as conn:
        if order_id is not None or session_id is not None:
            order = orders.by_id(conn, order_id) if order_id is not None else None
            if session_id is not None:
                by_session = orders.by_session(conn, session_id)
                if by_session is None or (order is not None and order.id != by_session.id):
                    raise UnknownOrder(f"no order has the checkout session {session_id}")
                order = by_session
            if order is None:
                raise UnknownOrder(f"no order {order_id}")
            # Its events that name it, and those about its session that name no order (the same rows as object_id =
            # its session would add: a session's events name its order whenever they name one); each half has its
            # partial index (migration 0013).
            conditions.append((e.order_id == order.id) | (e.order_id.is_(None) & (e.object_id == order.session_id)))
        if type is not None:
            conditions.append(e.type == type)
        return _events(conn, sa.and_(sa.true(), *conditions), limit)


def failed(db: Database, *, type: str | None = None, limit: int = 50) -> list[FailedDelivery]:
    """Deliveries that could not be processed, newest first."""
    f = failed_deliveries.c
    query = sa.select(failed_deliveries).order_by(f.id.desc()).limit(limit)
    if type is not None:
        query = query.where(f.event_type == type)
    with db.read() as conn:
        return [FailedDelivery(r["id"], r["received_at"], bool(r["signature_valid"]), r["event_id"], r["event_type"],
                               r["outcome"], r["error"]) for r in conn.execute(query).mappings()]


def _events(conn: Connection, where: Any, limit: int) -> list[StoredEvent]:
    e = webhook_events.c
    rows = conn.execute(
        sa.select(e.id, e.type, e.outcome, e.detail, e.order_id, e.object_id, e.source, e.livemode, e.created,
                  e.received_at, e.processed_at, e.attempts)
        .where(where).order_by(e.received_at.desc(), e.id).limit(limit)
    ).mappings()
    return [StoredEvent(**row) for row in rows]
