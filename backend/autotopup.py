"""Auto top-up with consent and a circuit breaker (issue 19).

The user opts in (``PUT /api/credits/auto-topup``): a threshold in credits, a pack, a monthly limit in the pack's
currency, at most ``maxPerDay`` top-ups a day, or notify-only. Nothing here turns it on: only the user's PUT does.

The rules, each held by the database so that two replicas cannot break them together:

* **A crossing.** A spend or a hold's settle whose entry takes the balance from at or above the threshold to below
  it (:func:`crossed`). Each crossing is acted on once: ``topups`` is unique per (user, crossing), the crossing
  being the entry's ledger id.
* **Never while one is in flight.** A charge is ``in_flight`` from its row's insert until the provider's answer is
  kept; a partial unique index allows one such row per user.
* **Never beyond the limits.** The day's count (in the user's spend-controls time zone) and the month's money are
  counted and the row inserted in one transaction that holds the user's settings row locked (``FOR UPDATE`` on
  PostgreSQL; SQLite's write lock): a conditional write.
* **The circuit breaker.** A declined or authentication-required payment turns auto top-up off, says why, and
  alerts the user with what to do; nothing retries it. A provider that cannot be reached leaves the top-up in
  flight: the same idempotency key asks again later (:func:`resume`), never a second charge.

The charge runs off the request path (:meth:`backend.services.Background.submit`), after the spend committed. A
paid top-up is granted through fulfilment (:func:`backend.fulfilment.apply_session`): an order of its own whose
"session" is the top-up, paid by the PaymentIntent, so that the credits, alert, clawbacks and receipts are a
purchase's. The synchronous answer and the ``payment_intent.succeeded`` webhook may both arrive, in either order
and more than once: the ledger's unique reference and the order's row make it once.

**Undo** for 24 hours (:data:`UNDO_WINDOW`): the top-up's unspent part (:func:`unspent`) is refunded through the
provider and clawed back through :mod:`backend.clawbacks` by its one rule, so the ledger stays exact; the refund
asked for is the largest whose clawback does not exceed the unspent credits (:func:`refund_for`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, RowMapping

from backend import alerts, clawbacks, fulfilment, grants, holds, ledger, orders, periods, prepared, spend_controls
from backend.catalogue import Catalogue
from backend.db import Database, insert_ignoring_duplicates, iso_utc
from backend.errors import (
    InvalidAutoTopup,
    NothingToUndo,
    PaymentProviderError,
    PaymentProviderRejected,
    TopupNotUndoable,
    UndoExpired,
    UnknownTopup,
)
from backend.order_status import PENDING
from backend.orders import Order
from backend.outcomes import Outcome
from backend.payments.base import (
    PURCHASE_TYPE,
    TOPUP_KEY,
    OffSessionCharge,
    PaymentIntentState,
    PaymentProvider,
    SessionState,
)
from backend.schema import auto_topups, topups, users
from backend.schema import orders as orders_table
from backend.services import Services
from resources import currencies

log = logging.getLogger("creditdesk.payments")

UNDO_WINDOW = timedelta(hours=24)
DEFAULT_MAX_PER_DAY = 3
MAX_PER_DAY = 24
IN_FLIGHT, SUCCEEDED, FAILED, NOTIFIED, UNDOING, UNDONE = (
    "in_flight", "succeeded", "failed", "notified", "undoing", "undone")
# Why auto top-up turned itself off: the payment's own words (Stripe's error codes).
DECLINED, AUTHENTICATION = "card_declined", "authentication_required"


@dataclass(frozen=True)
class AutoTopup:
    user_id: int
    enabled: bool
    notify_only: bool
    threshold: int
    pack_id: str
    monthly_limit: int
    currency: str
    max_per_day: int
    card_session: str | None = None
    card_payment_intent: str | None = None
    payment_method: str | None = None
    disabled_reason: str | None = None
    disabled_topup: str | None = None
    updated_at: str = ""

    @property
    def has_card(self) -> bool:
        return self.card_session is not None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> AutoTopup:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Topup:
    id: str
    user_id: int
    kind: str  # charge | notify
    status: str
    crossing: str
    pack_id: str
    pack_name: str
    credits: int
    amount: int
    currency: str
    order_id: str | None
    payment_intent: str | None
    failure: str | None
    created_at: str
    succeeded_at: str | None
    refund_amount: int | None
    refund_id: str | None
    undone_at: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> Topup:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def undo_until(self) -> str | None:
        if self.succeeded_at is None:
            return None
        return iso_utc(datetime.fromisoformat(self.succeeded_at.replace("Z", "+00:00")) + UNDO_WINDOW)

    def as_json(self, now: datetime) -> dict[str, object]:
        until = self.undo_until()
        return {"id": self.id, "kind": self.kind, "status": self.status, "packId": self.pack_id,
                "packName": self.pack_name, "credits": self.credits, "amount": self.amount,
                "currency": self.currency, "orderId": self.order_id, "failure": self.failure,
                "createdAt": self.created_at, "succeededAt": self.succeeded_at, "undoUntil": until,
                # An Undo whose refund did not get through (undoing) may be asked again: the same key, the same refund.
                "undoable": self.status == UNDOING or (self.status == SUCCEEDED and until is not None
                                                       and iso_utc(now) < until),
                "refunded": self.refund_amount if self.status == UNDONE else None}


# --- the user's settings ---------------------------------------------------------------------------------------


def load(conn: Connection, user_id: int, *, lock: bool = False) -> AutoTopup | None:
    query = sa.select(auto_topups).where(auto_topups.c.user_id == user_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return AutoTopup.from_row(row) if row else None


@dataclass(frozen=True)
class Changes:
    """A PUT's fields; None: unchanged (or the default, for a first opt-in)."""

    enabled: bool
    threshold: int | None = None
    pack_id: str | None = None
    monthly_limit: int | None = None
    max_per_day: int | None = None
    notify_only: bool | None = None


def update(conn: Connection, user_id: int, changes: Changes, catalogue: Catalogue, now: datetime) -> AutoTopup:
    """The user's choice, kept; InvalidAutoTopup (nothing changed) when it cannot work. Turning it off needs no other
    field; turning it on needs a threshold, a pack and a monthly limit that buys the pack at least once."""
    current = load(conn, user_id, lock=True)
    pack_id = changes.pack_id or (current.pack_id if current else None)
    threshold = changes.threshold if changes.threshold is not None else (current.threshold if current else None)
    limit = changes.monthly_limit if changes.monthly_limit is not None else (current.monthly_limit if current else None)
    if pack_id is None or threshold is None or limit is None:
        raise InvalidAutoTopup("setting auto top-up up needs threshold, packId and monthlyLimit" if changes.enabled
                               else "auto top-up is not set up: there is nothing to turn off")
    pack = catalogue.get(pack_id)
    if pack is None:
        raise InvalidAutoTopup(f"there is no credit pack with the id {pack_id!r}")
    if changes.enabled and not (changes.notify_only if changes.notify_only is not None
                                else current.notify_only if current else False) and limit < pack.amount:
        raise InvalidAutoTopup("the monthly limit is below the pack's price: no top-up could ever be made")
    values = {
        "enabled": changes.enabled, "threshold": threshold, "pack_id": pack.id, "monthly_limit": limit,
        "currency": pack.currency,
        "max_per_day": changes.max_per_day if changes.max_per_day is not None
        else current.max_per_day if current else DEFAULT_MAX_PER_DAY,
        "notify_only": changes.notify_only if changes.notify_only is not None
        else current.notify_only if current else False,
        "updated_at": iso_utc(now),
    }
    if changes.enabled:  # the user turned it on: the reason it was off is history
        values.update(disabled_reason=None, disabled_topup=None)
    if current is None:
        conn.execute(sa.insert(auto_topups).values(user_id=user_id, **values))
    else:
        conn.execute(sa.update(auto_topups).where(auto_topups.c.user_id == user_id).values(values))
    log.info("topup user=%s outcome=%s", user_id, "enabled" if changes.enabled else "disabled")
    found = load(conn, user_id)
    assert found is not None
    return found


def recent(conn: Connection, user_id: int, limit: int = 20) -> list[Topup]:
    rows = conn.execute(sa.select(topups).where(topups.c.user_id == user_id)
                        .order_by(topups.c.created_at.desc(), topups.c.id.desc()).limit(limit)).mappings()
    return [Topup.from_row(row) for row in rows]


def by_id(conn: Connection, topup_id: str, *, lock: bool = False) -> Topup | None:
    query = sa.select(topups).where(topups.c.id == topup_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return Topup.from_row(row) if row else None


# --- a crossing starts a top-up -----------------------------------------------------------------------------------


def crossed(before: int, after: int, threshold: int) -> bool:
    """Whether a change from ``before`` to ``after`` crosses the threshold downward."""
    return before >= threshold > after


@dataclass(frozen=True)
class Started:
    """A top-up row made for a crossing: a charge to make, or a notice already given."""

    topup: Topup
    settings: AutoTopup

    @property
    def charges(self) -> bool:
        return self.topup.kind == "charge"


def used_this_month(conn: Connection, user_id: int, window: periods.Window) -> int:
    """Money charged by top-ups made in ``window``: in flight or paid, less what Undo refunded."""
    t = topups.c
    rows = conn.execute(sa.select(t.status, t.amount, t.refund_amount).where(
        t.user_id == user_id, t.kind == "charge", t.created_at >= iso_utc(window.start),
        t.created_at < iso_utc(window.end), t.status.in_([IN_FLIGHT, SUCCEEDED, UNDOING, UNDONE]))).all()
    return sum(amount - (refunded or 0 if status == UNDONE else 0) for status, amount, refunded in rows)


def charges_today(conn: Connection, user_id: int, window: periods.Window) -> int:
    """Top-ups tried in ``window`` (a declined one counts: it was a try)."""
    t = topups.c
    return int(conn.execute(sa.select(sa.func.count()).where(
        t.user_id == user_id, t.kind == "charge", t.created_at >= iso_utc(window.start),
        t.created_at < iso_utc(window.end))).scalar_one())


def start(conn: Connection, user_id: int, *, crossing: str, before: int, after: int, catalogue: Catalogue,
          now: datetime) -> Started | None:
    """In its own write transaction, after the spend committed: the top-up this crossing starts, if any.

    None when auto top-up is off, the change crosses nothing, this crossing was acted on, one is in flight, or a
    limit is reached (then an alert says which, once per day or month)."""
    settings = load(conn, user_id, lock=True)
    if settings is None or not settings.enabled or not crossed(before, after, settings.threshold):
        return None
    pack = catalogue.get(settings.pack_id)
    if pack is None:
        log.warning("topup user=%s outcome=skipped reason=unknown_pack", user_id)
        return None
    charge = not settings.notify_only and settings.has_card
    controls = spend_controls.load(conn, user_id)
    if charge:
        day = periods.window("day", now, controls.zone)
        month = periods.window("month", now, controls.zone)
        if charges_today(conn, user_id, day) >= settings.max_per_day:
            alerts.create(conn, user_id, "topup_limit",
                          f"Auto top-up did not buy the {pack.name} pack: it has made {settings.max_per_day} "
                          "top-up(s) today, your daily limit.",
                          {"limit": "day", "maxPerDay": settings.max_per_day, "packId": pack.id},
                          dedupe_key=f"topup_limit:day:{day.first.isoformat()}")
            return None
        if used_this_month(conn, user_id, month) + pack.amount > settings.monthly_limit:
            alerts.create(conn, user_id, "topup_limit",
                          f"Auto top-up did not buy the {pack.name} pack: it would go over your monthly limit.",
                          {"limit": "month", "monthlyLimit": settings.monthly_limit, "currency": pack.currency,
                           "packId": pack.id},
                          dedupe_key=f"topup_limit:month:{month.first.isoformat()}")
            return None
    topup_id = "tu_" + secrets.token_hex(12)
    row = {"id": topup_id, "user_id": user_id, "kind": "charge" if charge else "notify",
           "status": IN_FLIGHT if charge else NOTIFIED, "crossing": crossing, "pack_id": pack.id,
           "pack_name": pack.name, "credits": pack.credits, "amount": pack.amount, "currency": pack.currency,
           "order_id": "ord_" + topup_id if charge else None, "payment_intent": None, "failure": None,
           "created_at": iso_utc(now), "succeeded_at": None, "refund_amount": None, "refund_id": None,
           "undone_at": None}
    # The unique indexes decide, whichever replica comes first: one row per crossing, one charge in flight.
    if insert_ignoring_duplicates(conn, topups, row) is None:
        log.info("topup user=%s crossing=%s outcome=skipped reason=crossing_taken_or_in_flight", user_id, crossing)
        return None
    topup = Topup.from_row(row)
    if not charge:
        why = "" if settings.notify_only else (" Buy it once with your card saved (Auto top-up, Buy and save card) to "
                                               "let it top up.")
        alerts.create(conn, user_id, "topup_threshold",
                      f"Your balance is {alerts.credits(after)}, below your auto top-up threshold of "
                      f"{alerts.credits(settings.threshold)}. Nothing was charged: buy the {pack.name} pack if you "
                      f"want more credits.{why}",
                      {"topupId": topup_id, "packId": pack.id, "balance": after, "threshold": settings.threshold},
                      dedupe_key=f"topup:{topup_id}")
    log.info("topup=%s user=%s outcome=%s", topup_id, user_id, "started" if charge else "notified")
    return Started(topup, settings)


# --- the charge -----------------------------------------------------------------------------------------------------


def charge_of(started: Started, customer_id: str, payment_method: str) -> OffSessionCharge:
    t = started.topup
    return OffSessionCharge(
        topup_id=t.id, customer_id=customer_id, payment_method=payment_method, amount=t.amount, currency=t.currency,
        metadata={"type": PURCHASE_TYPE, "orderId": t.order_id or "", "userId": str(t.user_id), "packId": t.pack_id,
                  "credits": str(t.credits), TOPUP_KEY: t.id})


def charge(db: Database, provider: PaymentProvider, started: Started, now: datetime) -> Topup:
    """Charge the saved card for a started top-up and keep the answer (off the request path)."""
    settings, topup = started.settings, started.topup
    with db.read() as conn:
        customer = conn.execute(sa.select(users.c.customer_id).where(users.c.id == topup.user_id)).scalar()
    try:
        method = settings.payment_method or (
            provider.saved_payment_method(settings.card_session, settings.card_payment_intent)
            if settings.card_session else None)
        if method is None or not customer:
            state = PaymentIntentState(None, "failed", topup.amount, topup.currency, {TOPUP_KEY: topup.id},
                                       error_code=DECLINED, decline_code="no_saved_card")
        else:
            if method != settings.payment_method:
                with db.transaction() as conn:
                    conn.execute(sa.update(auto_topups).where(auto_topups.c.user_id == topup.user_id,
                                                              auto_topups.c.card_session == settings.card_session)
                                 .values(payment_method=method))
            state = provider.charge_off_session(charge_of(started, str(customer), method))
    except PaymentProviderRejected as exc:
        # Refused for good (the card detached, the customer gone): as a decline, off, never asked again.
        log.warning("topup=%s user=%s outcome=provider_rejected reason=%s", topup.id, topup.user_id, exc)
        state = PaymentIntentState(None, "failed", topup.amount, topup.currency, {TOPUP_KEY: topup.id},
                                   error_code=DECLINED, decline_code="refused_by_provider")
    except PaymentProviderError as exc:
        # Not an answer about the card: the top-up stays in flight, and the same key asks again (resume).
        log.warning("topup=%s user=%s outcome=provider_unavailable reason=%s", topup.id, topup.user_id, exc)
        return topup
    with db.transaction() as conn:
        return record(conn, topup.id, state, now, source="charge")


def record(conn: Connection, topup_id: str, state: PaymentIntentState, now: datetime, *, source: str) -> Topup:
    """Keep what the payment says, once: paid is granted through fulfilment; declined or needing the user turns
    auto top-up off. The synchronous answer and the webhook both come here, in any order, any number of times."""
    topup = by_id(conn, topup_id, lock=True)
    if topup is None or topup.kind != "charge":
        raise UnknownTopup(topup_id)
    if state.status == "succeeded":
        return _paid(conn, topup, state, now, source)
    if state.status in ("failed", "requires_action") and topup.status == IN_FLIGHT:
        return _failed(conn, topup, state, now, source)
    if state.id and topup.payment_intent is None:
        conn.execute(sa.update(topups).where(topups.c.id == topup.id).values(payment_intent=state.id))
    return topup


def _paid(conn: Connection, topup: Topup, state: PaymentIntentState, now: datetime, source: str) -> Topup:
    assert state.id and topup.order_id
    order = orders.by_id(conn, topup.order_id, lock=True)
    if order is None:
        moment = iso_utc(now)
        insert_ignoring_duplicates(conn, orders_table, _as_dict(Order(
            id=topup.order_id, user_id=topup.user_id, pack_id=topup.pack_id, pack_name=topup.pack_name,
            credits=topup.credits, amount=topup.amount, currency=topup.currency, provider="auto_topup",
            session_id=topup.id, checkout_url="", return_url=None, state=None, status=PENDING, payment_intent=None,
            amount_refunded=0, credits_clawed_back=0, created_at=moment, updated_at=moment)))
    session = SessionState(
        id=topup.id, status="complete", payment_status="paid", amount_total=state.amount or topup.amount,
        currency=state.currency or topup.currency, client_reference_id=str(topup.user_id),
        payment_intent=state.id, metadata=state.metadata, amount_subtotal=topup.amount)
    result = fulfilment.apply_session(conn, session, source=f"topup_{source}")
    if result.outcome not in (Outcome.GRANTED, Outcome.ALREADY_GRANTED):
        log.error("topup=%s user=%s outcome=refused detail=%s", topup.id, topup.user_id, result.detail)
        return topup
    if topup.status in (IN_FLIGHT, FAILED):
        conn.execute(sa.update(topups).where(topups.c.id == topup.id, topups.c.status.in_([IN_FLIGHT, FAILED]))
                     .values(status=SUCCEEDED, payment_intent=state.id, succeeded_at=iso_utc(now), failure=None))
        alerts.create(conn, topup.user_id, "topup_succeeded",
                      f"Auto top-up bought the {topup.pack_name} pack: {alerts.credits(topup.credits)} added. "
                      "Undo within 24 hours refunds what you have not spent of it.",
                      {"topupId": topup.id, "orderId": topup.order_id, "credits": topup.credits,
                       "amount": topup.amount, "currency": topup.currency,
                       "undoUntil": iso_utc(now + UNDO_WINDOW)},
                      dedupe_key=f"topup_succeeded:{topup.id}")
        log.info("topup=%s user=%s source=%s outcome=succeeded credits=%d", topup.id, topup.user_id, source,
                 topup.credits)
    found = by_id(conn, topup.id)
    assert found is not None
    return found


def _failed(conn: Connection, topup: Topup, state: PaymentIntentState, now: datetime, source: str) -> Topup:
    reason = AUTHENTICATION if state.status == "requires_action" or state.error_code == AUTHENTICATION else DECLINED
    conn.execute(sa.update(topups).where(topups.c.id == topup.id, topups.c.status == IN_FLIGHT)
                 .values(status=FAILED, failure=reason, payment_intent=state.id))
    # The circuit breaker: off until the user turns it on again; nothing retries this payment.
    conn.execute(sa.update(auto_topups).where(auto_topups.c.user_id == topup.user_id).values(
        enabled=False, disabled_reason=reason, disabled_topup=topup.id, updated_at=iso_utc(now)))
    what = ("your bank asked to confirm the payment, which cannot be done while you are away"
            if reason == AUTHENTICATION else "your card was declined")
    alerts.create(conn, topup.user_id, "topup_failed",
                  f"Auto top-up could not buy the {topup.pack_name} pack: {what}. Nothing was charged, and auto "
                  "top-up is now off. To turn it on again, buy the pack once with your card saved (Auto top-up, "
                  "Buy and save card), with this card or another.",
                  {"topupId": topup.id, "reason": reason, "declineCode": state.decline_code, "packId": topup.pack_id,
                   "fix": {"action": "buy", "packId": topup.pack_id, "saveCard": True}},
                  dedupe_key=f"topup_failed:{topup.id}")
    log.warning("topup=%s user=%s source=%s outcome=failed reason=%s decline_code=%s", topup.id, topup.user_id,
                source, reason, state.decline_code)
    found = by_id(conn, topup.id)
    assert found is not None
    return found


def _as_dict(order: Order) -> dict[str, Any]:
    return {name: getattr(order, name) for name in Order.__dataclass_fields__}


def topup_of_payment(obj: Mapping[str, Any]) -> str | None:
    """The top-up a PaymentIntent (a webhook's object) pays, if it is one of ours."""
    metadata = obj.get("metadata")
    found = metadata.get(TOPUP_KEY) if isinstance(metadata, Mapping) else None
    return found if isinstance(found, str) and found.startswith("tu_") else None


def after_change(db: Database, provider: PaymentProvider, catalogue: Catalogue, user_id: int, *, crossing: str,
                 before: int, after: int, now: datetime | None = None) -> Topup | None:
    """After a spend or a settle committed (off its request path): start and charge the top-up its crossing calls
    for, if any. A read first: most spends cross nothing, and take no write lock here."""
    with db.read() as conn:
        settings = load(conn, user_id)
    if settings is None or not settings.enabled or not crossed(before, after, settings.threshold):
        return None
    moment = now or datetime.now(UTC)
    with db.transaction() as conn:
        started = start(conn, user_id, crossing=crossing, before=before, after=after, catalogue=catalogue, now=moment)
    if started is None:
        return None
    if not started.charges:
        return started.topup
    return charge(db, provider, started, moment)


STALE = timedelta(minutes=2)  # a charge in flight this long was left by a provider out of reach (or a crash)


def resume_stale(db: Database, provider: PaymentProvider, now: datetime, *, older_than: timedelta = STALE) -> int:
    """Ask again, with the same idempotency key, about every charge left in flight since before ``now - older_than``
    (reconcile runs it); how many were asked. Never a second charge: Stripe answers the key with the first."""
    with db.read() as conn:
        stale = conn.execute(sa.select(topups.c.user_id).where(
            topups.c.status == IN_FLIGHT, topups.c.created_at < iso_utc(now - older_than))).scalars().all()
    for user_id in stale:
        resume(db, provider, int(user_id), now)
    return len(stale)


def resume(db: Database, provider: PaymentProvider, user_id: int, now: datetime) -> Topup | None:
    """Ask again about a top-up left in flight (the provider could not be reached): same key, never a new charge."""
    with db.read() as conn:
        row = conn.execute(sa.select(topups).where(topups.c.user_id == user_id, topups.c.status == IN_FLIGHT)
                           ).mappings().first()
        settings = load(conn, user_id)
    if row is None or settings is None:
        return None
    return charge(db, provider, Started(Topup.from_row(row), settings), now)


# --- Undo -------------------------------------------------------------------------------------------------------


def unspent(conn: Connection, topup: Topup, now: datetime) -> int:
    """What is left of the top-up's credits: its grant's remaining credits (spends take paid grants oldest first, so
    a top-up's is spent after the credits the user had before it; clawbacks take from it first), and never more than
    the available balance (the balance less open holds)."""
    grant = grants.of_purchase(conn, topup.user_id, topup.id)
    if topup.order_id is None or grant is None:
        return 0
    available = ledger.balance(conn, topup.user_id) - holds.reserved(conn, topup.user_id, now)
    return max(0, min(grant.remaining, available))


def refund_for(*, credits: int, amount: int, unspent_credits: int) -> int:
    """The refund (minor units) for giving back ``unspent_credits`` of ``credits`` bought for ``amount``: all of it
    when nothing was spent, else the largest refund whose clawback, floor(credits * R / amount), does not exceed
    them (:func:`backend.clawbacks.credits_clawed_back`)."""
    if unspent_credits <= 0:
        return 0
    if unspent_credits >= credits:
        return amount
    return min(amount, -(-(unspent_credits + 1) * amount // credits) - 1)


@dataclass(frozen=True)
class Undone:
    topup: Topup
    refunded: int  # minor units
    credits: int  # clawed back
    balance: int


def prepare_undo(conn: Connection, user_id: int, topup_id: str, now: datetime) -> Topup:
    """The first step of Undo, in a transaction: the refund to ask for, fixed (a retry asks for the same)."""
    topup = by_id(conn, topup_id, lock=True)
    if topup is None or topup.user_id != user_id:
        raise UnknownTopup(topup_id)
    if topup.status == UNDOING:
        return topup  # asked before and not finished: ask again with the same key and amount
    if topup.status != SUCCEEDED or topup.succeeded_at is None or topup.payment_intent is None:
        raise TopupNotUndoable(topup_id, topup.status)
    until = topup.undo_until()
    assert until is not None
    if iso_utc(now) >= until:
        raise UndoExpired(topup_id, until)
    ledger.locked_balance(conn, user_id)
    left = unspent(conn, topup, now)
    order = orders.by_id(conn, topup.order_id or "")
    assert order is not None
    refund = refund_for(credits=topup.credits, amount=order.amount_charged, unspent_credits=left)
    if refund <= 0:
        raise NothingToUndo(topup_id)
    conn.execute(sa.update(topups).where(topups.c.id == topup.id, topups.c.status == SUCCEEDED)
                 .values(status=UNDOING, refund_amount=refund))
    return replace(topup, status=UNDOING, refund_amount=refund)


def finish_undo(conn: Connection, topup: Topup, refund: Mapping[str, Any], now: datetime) -> Undone:
    """Keep the provider's refund and claw back through the clawback rule, once."""
    assert topup.payment_intent and topup.order_id and topup.refund_amount is not None
    news = clawbacks.refund_news({**refund, "currency": refund.get("currency") or topup.currency,
                                  "payment_intent": topup.payment_intent}, int(now.timestamp()))
    if news is None:
        raise PaymentProviderError("the provider's refund cannot be read")
    clawbacks.lock_payment(conn, topup.payment_intent)
    clawbacks.record_refund(conn, news)
    order = orders.by_id(conn, topup.order_id, lock=True)
    assert order is not None
    settled = clawbacks.settle(conn, order, clawbacks.Cause("refund", news.id))
    current = by_id(conn, topup.id, lock=True)
    assert current is not None
    if current.status == UNDOING:
        conn.execute(sa.update(topups).where(topups.c.id == topup.id, topups.c.status == UNDOING)
                     .values(status=UNDONE, refund_id=news.id, undone_at=iso_utc(now)))
        alerts.create(conn, topup.user_id, "topup_undone",
                      f"Auto top-up undone: {alerts.credits(settled.order.credits_clawed_back)} taken back and "
                      f"{currencies.plain(topup.refund_amount, topup.currency)} refunded to your card.",
                      {"topupId": topup.id, "refunded": topup.refund_amount, "currency": topup.currency,
                       "credits": settled.order.credits_clawed_back},
                      dedupe_key=f"topup_undone:{topup.id}")
    found = by_id(conn, topup.id)
    assert found is not None
    return Undone(found, topup.refund_amount, settled.order.credits_clawed_back, ledger.balance(conn, topup.user_id))


def undo(db: Database, provider: PaymentProvider, user_id: int, topup_id: str, now: datetime | None = None) -> Undone:
    """``POST /api/credits/auto-topup/{id}/undo``: refund the unspent part and claw back exactly that, once."""
    moment = now or datetime.now(UTC)
    with db.transaction() as conn:
        topup = prepare_undo(conn, user_id, topup_id, moment)
    assert topup.payment_intent and topup.refund_amount
    refund = provider.refund(topup.payment_intent, topup.refund_amount, f"topup-undo-{topup.id}")
    with db.transaction() as conn:
        return finish_undo(conn, topup, refund, moment)


# Read after every spend (on the spend's own worker thread): built once, and on SQLite run outside a transaction on
# the cursor kept for such lookups (Database.peek), so that a spend of a user without auto top-up costs microseconds.
_THRESHOLD = prepared.hot("auto top-up's threshold", sa.select(auto_topups.c.threshold).where(
    auto_topups.c.user_id == sa.bindparam("user_id"), auto_topups.c.enabled == sa.true()))


def submit_after(services: Services, user_id: int, *, crossing: int | None, before: int, after: int) -> None:
    """After a spend or a settle committed, on its worker thread: if it crossed an enabled threshold, start the
    top-up on the background thread, so that the request never waits on it (nor on the provider). The background
    work reads and decides again in a transaction of its own: this look only spares it the spends that cross
    nothing."""
    if crossing is None or after >= before:
        return
    threshold = services.db.peek(_THRESHOLD, {"user_id": user_id})
    if threshold is None or not crossed(before, after, int(threshold)):
        return
    services.background.submit(lambda: _after_change_quietly(services, user_id, str(crossing), before, after))


def _after_change_quietly(services: Services, user_id: int, crossing: str, before: int, after: int) -> None:
    after_change(services.db, services.provider, services.catalogue, user_id, crossing=crossing, before=before,
                 after=after)


def status(conn: Connection, user_id: int, now: datetime) -> dict[str, object]:
    """``GET /api/credits/auto-topup``: the settings, how much of the limits is used, and the recent top-ups."""
    settings = load(conn, user_id)
    zone = spend_controls.load(conn, user_id).zone
    return {
        "enabled": bool(settings and settings.enabled), "notifyOnly": bool(settings and settings.notify_only),
        "threshold": settings.threshold if settings else None, "packId": settings.pack_id if settings else None,
        "monthlyLimit": settings.monthly_limit if settings else None,
        "currency": settings.currency if settings else None,
        "maxPerDay": settings.max_per_day if settings else DEFAULT_MAX_PER_DAY,
        "cardSaved": bool(settings and settings.has_card),
        "disabledReason": settings.disabled_reason if settings else None,
        "usedThisMonth": used_this_month(conn, user_id, periods.window("month", now, zone)),
        "topupsToday": charges_today(conn, user_id, periods.window("day", now, zone)),
        "topups": [t.as_json(now) for t in recent(conn, user_id)],
    }
