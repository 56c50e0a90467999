"""Catching up with Stripe: events that never arrived, and orders still waiting on their checkout.

Webhooks get lost: the endpoint was down, the signing secret was wrong, Stripe gave up after three
days. :func:`reconcile` reads Stripe's Events API for the event types Creditdesk acts on and feeds
every event not yet processed through the webhook's own path (:func:`backend.webhooks.process_event`),
then asks the provider about every order still pending (and recently cancelled ones) and expires the
lapsed. Last, as dj-stripe re-syncs an object on its events, it re-reads from Stripe the refunds and
disputes of every order paid or changed in the window, and of the charges that refunds or disputes named
without their payment, and settles any difference (:func:`backend.clawbacks.resync`). Everything it
does is idempotent, so it is safe at any time, twice, or while webhooks arrive.
``serve`` in Stripe mode runs it on an interval (:class:`Loop`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from backend import autotopup, clawbacks, event_store, fulfilment, invoices, metrics, orders, webhooks
from backend.db import iso_utc, utcnow
from backend.errors import (
    CreditdeskError,
    InvalidSince,
    MalformedEvent,
    PaymentProviderError,
    RefusedEvent,
    SessionNotFound,
)
from backend.order_status import AFTER_PAYMENT, Happening
from backend.outcomes import Outcome
from backend.schema import reconcile_runs, webhook_events
from backend.services import Services

log = logging.getLogger("creditdesk.payments")

# Stripe keeps events for 30 days: further back there is nothing to read.
MAX_SINCE = timedelta(days=30)
DEFAULT_SINCE = timedelta(hours=72)
# A Checkout Session lives at most 24 hours; one its provider no longer knows after this is lapsed.
SESSION_LIFETIME = timedelta(hours=25)
_SINCE = re.compile(r"^\s*(\d{1,6})\s*([mhd])\s*$")


def parse_since(text: str) -> tuple[timedelta, str | None]:
    """``72h`` -> (72 hours, None); beyond Stripe's 30 days -> (30 days, a note saying so)."""
    match = _SINCE.match(text)
    if not match:
        raise InvalidSince(f"--since takes minutes, hours or days such as 90m, 72h or 30d, not {text!r}")
    number, unit = int(match[1]), match[2]
    span = {"m": timedelta(minutes=number), "h": timedelta(hours=number), "d": timedelta(days=number)}[unit]
    if span > MAX_SINCE:
        return MAX_SINCE, f"Stripe keeps events for 30 days: reading the last 30 days, not {text}"
    return span, None


@dataclass(frozen=True)
class OrderChange:
    order_id: str
    session_id: str
    before: str
    after: str


@dataclass(frozen=True)
class PaymentChange:
    order_id: str
    outcome: str  # clawed_back or given_back
    credits: int
    status: str


@dataclass
class Report:
    since: str
    trigger: str
    events_seen: int = 0
    events_applied: list[webhooks.Processed] = field(default_factory=list)
    orders_checked: int = 0
    orders_changed: list[OrderChange] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    payments_checked: int = 0
    payments_changed: list[PaymentChange] = field(default_factory=list)
    invoices_filled: int = 0  # Stripe's invoices whose links were read (they were missing after payment)
    pruned_deliveries: int = 0
    pruned_bodies: int = 0
    topups_resumed: int = 0  # auto top-ups left in flight, asked about again with their key
    # Stopped before the end of Stripe's events (too many, too long, or the server stopping), or some event
    # could not be used: what was done is done, and the next run goes on from the same point.
    partial: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "since": self.since, "trigger": self.trigger, "eventsSeen": self.events_seen,
            "eventsApplied": [{"id": p.event_id, "type": p.type, "outcome": p.outcome, "detail": p.detail,
                               "orderId": p.order_id} for p in self.events_applied],
            "ordersChecked": self.orders_checked,
            "ordersChanged": [{"orderId": c.order_id, "sessionId": c.session_id, "before": c.before,
                               "after": c.after} for c in self.orders_changed],
            "paymentsChecked": self.payments_checked,
            "paymentsChanged": [{"orderId": c.order_id, "outcome": c.outcome, "credits": c.credits,
                                 "status": c.status} for c in self.payments_changed],
            "invoicesFilled": self.invoices_filled,
            "errors": self.errors, "prunedDeliveries": self.pruned_deliveries, "prunedBodies": self.pruned_bodies,
            "partial": self.partial, "topupsResumed": self.topups_resumed,
        }


@dataclass(frozen=True)
class Bounds:
    """How far one run reads Stripe's Events API: at most ``max_events`` events (a hundred a page) and
    ``seconds`` of reading, and not past ``stopping()`` (the server shutting down). Stripe keeps 30 days of
    events; a run cut short records itself as partial, and the next one reads the rest."""

    max_events: int = 10_000
    seconds: float = 240.0
    clock: Callable[[], float] = time.monotonic
    stopping: Callable[[], bool] = lambda: False


def reconcile(services: Services, *, since: timedelta = DEFAULT_SINCE, trigger: str = "command",
              bounds: Bounds | None = None) -> Report:
    now = datetime.now(UTC)
    start = now - min(since, MAX_SINCE)
    report = Report(since=start.isoformat(timespec="seconds").replace("+00:00", "Z"), trigger=trigger)
    with services.db.transaction() as conn:
        run_id = conn.execute(reconcile_runs.insert().values(
            started_at=utcnow(), since=report.since, trigger=trigger).returning(reconcile_runs.c.id)).scalar_one()
    _catch_up_events(services, int(start.timestamp()), report, bounds or Bounds())
    _recheck_orders(services, now, report)
    _resync_payments(services, iso_utc(start), report)
    try:
        report.topups_resumed = autotopup.resume_stale(services.db, services.provider, now)
    except CreditdeskError as exc:
        report.errors.append(f"auto top-up: {exc}")
    report.invoices_filled, errors = invoices.fill_missing(services.db, services.provider.invoice_links,
                                                           paid_since=iso_utc(start))
    report.errors.extend(errors)
    retention = timedelta(days=services.settings.event_retention_days)
    before = (now - retention).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    report.pruned_deliveries, report.pruned_bodies = event_store.prune(services.db, before=before)
    with services.db.transaction() as conn:
        conn.execute(reconcile_runs.update().where(reconcile_runs.c.id == run_id).values(
            finished_at=utcnow(), events_seen=report.events_seen, events_applied=len(report.events_applied),
            orders_checked=report.orders_checked, orders_changed=len(report.orders_changed),
            error=(("partial: " if report.partial else "") + "; ".join(report.errors))[:2000] or None,
        ))
    metrics.reconcile_finished(trigger, partial=report.partial or bool(report.errors),
                               events_applied=len(report.events_applied), finished_at=time.time())
    log.info("reconcile trigger=%s since=%s events_seen=%d events_applied=%d orders_checked=%d orders_changed=%d "
             "errors=%d partial=%s", trigger, report.since, report.events_seen, len(report.events_applied),
             report.orders_checked, len(report.orders_changed), len(report.errors), report.partial)
    return report


def _catch_up_events(services: Services, created_since: int, report: Report, bounds: Bounds) -> None:
    """Feed every event Stripe lists that we have not kept through the webhook's path, within ``bounds``.

    An event that cannot be used (no id, an id that is not text, no data) is kept as a failed delivery for
    support and the run goes on with the rest: one bad event must not keep the good ones from being applied."""
    deadline = bounds.clock() + bounds.seconds
    events = services.provider.list_events(sorted(webhooks.HANDLED), created_since)
    try:
        for event in events:
            if report.events_seen >= bounds.max_events or bounds.clock() > deadline or bounds.stopping():
                why = ("the server is stopping" if bounds.stopping() else
                       f"{report.events_seen} events read" if report.events_seen >= bounds.max_events else
                       f"{bounds.seconds:g} s of reading")
                report.partial = True
                report.errors.append(f"Stripe's Events API: stopped after {why}; the next run reads on")
                break
            report.events_seen += 1
            _catch_up_one(services, event, report)
    except PaymentProviderError as exc:
        report.partial = True
        report.errors.append(f"Stripe's Events API: {exc}")
    finally:
        close = getattr(events, "close", None)
        if callable(close):
            close()


def _catch_up_one(services: Services, event: Any, report: Report) -> None:
    event_id = event.get("id") if isinstance(event, dict) else None
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255 or "\x00" in event_id:
        event_store.keep_malformed(services.db, event, "reconcile: an event from Stripe's Events API without a "
                                                    "usable id")
        report.partial = True
        report.errors.append("an event without a usable id: kept as a failed delivery")
        return
    with services.db.read() as conn:
        known = conn.execute(sa.select(webhook_events.c.id).where(webhook_events.c.id == event_id)).first()
    if known:
        return
    try:
        webhooks.check_values(event)  # as the webhook checks a delivery: no NUL, nothing too deep
        processed = webhooks.process_event(services.db, event, source="reconcile",
                                           livemode=services.settings.stripe_livemode,
                                           sessions=services.provider.retrieve_session)
    except (MalformedEvent, RefusedEvent) as exc:
        event_store.keep_malformed(services.db, event, f"reconcile: {exc}")
        report.partial = True
        report.errors.append(f"event {event_id}: {exc}; kept as a failed delivery")
        return
    if processed.outcome != Outcome.DUPLICATE:  # a webhook may have brought it meanwhile
        report.events_applied.append(processed)


def _recheck_orders(services: Services, now: datetime, report: Report) -> None:
    lapsed_before = (now - SESSION_LIFETIME).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with services.db.read() as conn:
        waiting = orders.unsettled(conn, created_since=lapsed_before)
    for order in waiting:
        report.orders_checked += 1
        try:
            session = services.provider.retrieve_session(order.session_id)
        except SessionNotFound:
            session = None
        except PaymentProviderError as exc:
            report.errors.append(f"order {order.id}: {exc}")
            continue
        with services.db.transaction() as conn:
            current = orders.by_id(conn, order.id, lock=True)
            assert current is not None
            if session is not None:
                result = fulfilment.apply_session(conn, session, source="reconcile")
            elif current.created_at < lapsed_before and current.refusal is None:
                # The provider forgot it and it is long past its life. (A payment refused stays as it is,
                # with its reason, for support: money was taken.)
                result = fulfilment.move(conn, current, Happening.SESSION_EXPIRED, source="reconcile")
            else:
                continue
        after = result.order.status if result.order else current.status
        if after != current.status:
            report.orders_changed.append(OrderChange(order.id, order.session_id, current.status, after))


# At most this many paid orders are re-read in one run (two Stripe calls each); the next run goes on.
RESYNC_LIMIT = 500


def _resync_payments(services: Services, updated_since: str, report: Report) -> None:
    """Stripe's truth about refunds and disputes, for the payments that may lack some of it."""
    with services.db.read() as conn:
        charges = clawbacks.unmatched_charges(conn)
    for charge_id in charges:
        try:
            payment_intent = services.provider.payment_of_charge(charge_id)
        except PaymentProviderError as exc:
            report.errors.append(f"charge {charge_id}: {exc}")
            continue
        if payment_intent is None:
            continue
        with services.db.transaction() as conn:
            clawbacks.lock_payment(conn, payment_intent)
            clawbacks.matched_through_charge(conn, charge_id, payment_intent)
            order = orders.by_payment_intent(conn, payment_intent, lock=True)
            settlement = clawbacks.resync(conn, order, (), ()) if order and order.status in AFTER_PAYMENT else None
        _note_settlement(report, settlement)
    with services.db.read() as conn:
        paid = orders.paid_changed_since(conn, updated_since, RESYNC_LIMIT)
    for order in paid:
        assert order.payment_intent
        report.payments_checked += 1
        try:
            stripe_refunds = services.provider.list_refunds(order.payment_intent)
            stripe_disputes = services.provider.list_disputes(order.payment_intent)
        except PaymentProviderError as exc:
            report.errors.append(f"order {order.id}: {exc}")
            continue
        with services.db.transaction() as conn:
            clawbacks.lock_payment(conn, order.payment_intent)
            current = orders.by_id(conn, order.id, lock=True)
            assert current is not None
            settlement = clawbacks.resync(conn, current, stripe_refunds, stripe_disputes)
        _note_settlement(report, settlement)


def _note_settlement(report: Report, settlement: clawbacks.Settlement | None) -> None:
    if settlement is not None and settlement.credits:
        report.payments_changed.append(PaymentChange(settlement.order.id, settlement.outcome, settlement.credits,
                                                     settlement.order.status))


def default_since(services: Services) -> timedelta:
    """For the automatic runs: back to the last run that finished (with a margin), else 72 hours."""
    with services.db.read() as conn:
        last = conn.execute(
            sa.select(reconcile_runs.c.started_at).where(reconcile_runs.c.finished_at.is_not(None))
            .order_by(reconcile_runs.c.id.desc()).limit(1)
        ).scalar()
    if last is None:
        return DEFAULT_SINCE
    gap = datetime.now(UTC) - datetime.fromisoformat(last.replace("Z", "+00:00"))
    return min(MAX_SINCE, gap + timedelta(minutes=10))


# The name of the database lock that makes the automatic reconcile run on one replica at a time.
LEADER_LOCK = "creditdesk.reconcile"


class Loop:
    """``serve``'s automatic reconcile: every ``interval`` seconds in a thread of its own, until stopped."""

    def __init__(self, services: Services, interval: float) -> None:
        self._services = services
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconcile", daemon=True)

    def start(self) -> Loop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                # Replicas on one PostgreSQL database take turns: the one holding the lock reconciles, the
                # others skip this round (on SQLite this process always holds it).
                with self._services.db.leader_lock(LEADER_LOCK) as leading:
                    if leading:
                        reconcile(self._services, since=default_since(self._services), trigger="interval",
                                  bounds=Bounds(stopping=self._stop.is_set))
                    else:
                        log.info("reconcile trigger=interval outcome=skipped reason=another_replica_reconciling")
            except Exception:  # a bad day (database gone, a bug) must not end the loop; the next run retries
                log.exception("reconcile trigger=interval outcome=failed")
            self._stop.wait(max(1.0, self._interval - (time.monotonic() - started)))
