"""What refunds and disputes take back from a purchase, and what they give back.

The one rule, held at every moment for each order: credits clawed back =
floor(credits * min(amount, R + D) / amount), where R sums the payment's refunds that are pending or
succeeded and D the disputed amount of its disputes that have not ended in the merchant's favour (open,
under appeal, lost, prevented, or in a status we do not know), both in the order's currency. Stripe's
refund and dispute objects are kept with their latest known status; after each change the order is
settled again (:func:`settle`), and the difference between the new figure and what was clawed back so
far becomes one ledger entry that names the Stripe object that caused it.
Running it twice, or for events in any order, finds no difference the second time.

Refunds may reach us as refund objects (``refund.*``, ``charge.refund.updated``), as the charge's
cumulative ``amount_refunded`` (``charge.refunded``, whose charge no longer lists its refunds), or
both: R is the larger of the two views, so one refund seen both ways counts once. The charge's figure
is a snapshot: refunds it counted (made by its time) and known to have failed or been cancelled after
it are taken out of it.

A refund or dispute naming only its charge is matched to its payment through the charge; a payment's
grant and its refunds and disputes take the payment's lock (:func:`lock_payment`) so that neither misses
the other when they are handled at the same moment by different connections or replicas.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection

from backend import entries, expiry, grants, ledger, metrics, orders, prepared
from backend.db import hot_insert_ignoring, insert_ignoring_duplicates, lock_until_commit, utcnow
from backend.order_status import AFTER_PAYMENT, after_payment, next_status
from backend.orders import Order
from backend.outcomes import Outcome
from backend.schema import disputes, ledger_entries, payment_refunds, refunds
from backend.visible import visible
from resources import currencies

log = logging.getLogger("creditdesk.payments")

# Stripe's refund statuses: the money is leaving or left, or it came back.
REFUND_COUNTED = frozenset({"pending", "requires_action", "succeeded"})
REFUND_GIVEN_BACK = frozenset({"failed", "canceled"})
# Stripe's dispute statuses (stripe-python's Dispute.status lists them). While a dispute is open (an
# inquiry, a chargeback, or an appeal after a loss) the money is with the cardholder; lost and prevented
# (resolved before a chargeback by refunding the cardholder) are final. Only a dispute that ended in the
# merchant's favour gives credits back: a status we do not know counts as an open dispute, never as an end.
DISPUTE_OPEN = frozenset({"warning_needs_response", "warning_under_review", "needs_response", "under_review",
                          "appeal_needs_response", "appeal_under_review"})
DISPUTE_LOST = frozenset({"lost", "prevented"})
DISPUTE_GIVEN_BACK = frozenset({"won", "warning_closed"})
DISPUTE_KNOWN = DISPUTE_OPEN | DISPUTE_LOST | DISPUTE_GIVEN_BACK
# For two events of the same second, the status further along wins (a succeeded refund can still fail; an
# appeal comes after a loss, and ends in a win or a loss).
STATUS_RANK = {"pending": 0, "requires_action": 0, "succeeded": 1, "failed": 2, "canceled": 2,
               "warning_needs_response": 0, "warning_under_review": 1, "needs_response": 1, "under_review": 2,
               "lost": 3, "prevented": 3, "appeal_needs_response": 4, "appeal_under_review": 5,
               "won": 6, "warning_closed": 6}

Kind = Literal["refund", "dispute", "charge"]


@dataclass(frozen=True)
class Cause:
    """The Stripe object whose news changed a payment: it names the ledger entry that follows."""

    kind: Kind
    id: str


@dataclass(frozen=True)
class MoneyFacts:
    refunded: int  # R
    disputed: int  # D
    disputes_open: bool
    disputes_lost: bool


def credits_clawed_back(*, credits: int, amount: int, refunded: int, disputed: int) -> int:
    """floor(credits * min(amount, R + D) / amount), in whole credits."""
    if amount <= 0 or credits < 0 or refunded < 0 or disputed < 0:
        raise ValueError("a clawback needs a positive amount paid and no negative figures")
    return credits * min(amount, refunded + disputed) // amount


# --- what Stripe told us ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundNews:
    id: str
    payment_intent: str | None
    charge_id: str | None
    amount: int
    currency: str
    status: str
    as_of: int  # the event's time at Stripe
    created: int | None = None  # when Stripe created the refund: whether a charge's snapshot counted it


@dataclass(frozen=True)
class DisputeNews:
    id: str
    payment_intent: str | None
    charge_id: str | None
    amount: int
    currency: str
    status: str
    reason: str | None
    as_of: int


@dataclass(frozen=True)
class ChargeRefundsNews:
    """``charge.refunded``: the charge's cumulative refunded amount at the event's time."""

    payment_intent: str
    charge_id: str
    amount_refunded: int
    currency: str | None
    as_of: int


def record_refund(conn: Connection, news: RefundNews) -> bool:
    """Keep the refund's newest known status; returns whether this news was newer than what we had."""
    return _record(conn, refunds, news.id, news.as_of, {
        "payment_intent": news.payment_intent, "charge_id": news.charge_id, "amount": news.amount,
        "currency": news.currency, "status": news.status, "created": news.created,
    })


def record_dispute(conn: Connection, news: DisputeNews) -> bool:
    if news.status not in DISPUTE_KNOWN:
        log.warning("payment dispute=%s status=%s outcome=unknown_dispute_status treated_as=open",
                    news.id, _printable(news.status))
    return _record(conn, disputes, news.id, news.as_of, {
        "payment_intent": news.payment_intent, "charge_id": news.charge_id, "amount": news.amount,
        "currency": news.currency, "status": news.status, "reason": news.reason,
    })


def record_charge_refunds(conn: Connection, news: ChargeRefundsNews) -> bool:
    values = {"payment_intent": news.payment_intent, "charge_id": news.charge_id,
              "amount_refunded": news.amount_refunded, "currency": news.currency, "as_of": news.as_of,
              "updated_at": utcnow()}
    if insert_ignoring_duplicates(conn, payment_refunds, values):
        return True
    table = payment_refunds
    row = conn.execute(
        sa.select(table.c.as_of, table.c.amount_refunded).where(table.c.payment_intent == news.payment_intent)
        .with_for_update()
    ).mappings().one()
    # A later snapshot wins; of two at the same second, the larger (refunds only add up within a second).
    if (news.as_of, news.amount_refunded) <= (row["as_of"], row["amount_refunded"]):
        return False
    conn.execute(table.update().where(table.c.payment_intent == news.payment_intent).values(values))
    return True


def _record(conn: Connection, table: sa.Table, object_id: str, as_of: int, values: dict[str, Any]) -> bool:
    row = {"id": object_id, "as_of": as_of, "updated_at": utcnow(), **values}
    if insert_ignoring_duplicates(conn, table, row):
        return True
    stored = conn.execute(
        sa.select(table.c.as_of, table.c.status).where(table.c.id == object_id).with_for_update()
    ).mappings().one()
    # Events arrive in any order: only newer news replaces what we hold.
    if (as_of, STATUS_RANK.get(values["status"], 0)) <= (stored["as_of"], STATUS_RANK.get(stored["status"], 0)):
        return False
    conn.execute(table.update().where(table.c.id == object_id).values(row))
    return True


def facts(conn: Connection, payment_intent: str, currency: str) -> MoneyFacts:
    """R and D for one payment, counting only objects in the order's currency."""
    found_refunds = conn.execute(
        sa.select(refunds).where(refunds.c.payment_intent == payment_intent, refunds.c.currency == currency)
    ).mappings().all()
    by_objects = sum(r["amount"] for r in found_refunds if r["status"] in REFUND_COUNTED)
    snapshot = conn.execute(
        sa.select(payment_refunds).where(payment_refunds.c.payment_intent == payment_intent)
    ).mappings().first()
    by_charge = 0
    if snapshot is not None and snapshot["currency"] in (None, currency):
        # Refunds that failed or were cancelled after the snapshot, of those it counted: made by then (a
        # refund kept before its creation time was, is assumed counted, as it was then).
        failed_since = sum(r["amount"] for r in found_refunds
                           if r["status"] in REFUND_GIVEN_BACK and r["as_of"] >= snapshot["as_of"]
                           and (r["created"] is None or r["created"] <= snapshot["as_of"]))
        by_charge = max(0, snapshot["amount_refunded"] - failed_since)
    found_disputes = conn.execute(
        sa.select(disputes).where(disputes.c.payment_intent == payment_intent, disputes.c.currency == currency)
    ).mappings().all()
    counted = [d for d in found_disputes if d["status"] not in DISPUTE_GIVEN_BACK]
    return MoneyFacts(
        refunded=max(by_objects, by_charge),
        disputed=sum(d["amount"] for d in counted),
        disputes_open=any(d["status"] not in DISPUTE_LOST for d in counted),  # open, or a status we do not know
        disputes_lost=any(d["status"] in DISPUTE_LOST for d in counted),
    )


def lock_payment(conn: Connection, payment_intent: str) -> None:
    """Take the payment's lock until the transaction ends: its grant and its refunds and disputes take it
    before they read each other's facts.

    The grant finds the order by its session and only then writes the payment intent on it; a refund
    finds the order by that payment intent. Without this lock, on PostgreSQL, a refund handled while the
    grant is not yet committed finds no paid order and is only kept, and the grant, which read the
    refunds before the refund committed, settles nothing: the credits are never clawed back. With it, the
    second of the two waits for the first and then reads what it committed."""
    lock_until_commit(conn, f"payment:{payment_intent}")


def payment_of_charge(conn: Connection, charge_id: str) -> str | None:
    """The payment intent a charge belongs to, as far as the refunds, disputes and charges we keep say."""
    for table in (payment_refunds, refunds, disputes):
        found = conn.execute(
            sa.select(table.c.payment_intent)
            .where(table.c.charge_id == charge_id, table.c.payment_intent.is_not(None)).limit(1)
        ).scalar()
        if found:
            return str(found)
    return None


def _printable(text: str) -> str:
    return visible(text)[:64]


def _latest_cause() -> sa.Select[Any]:
    payment_intent: sa.BindParameter[str] = sa.bindparam("payment_intent")
    news = sa.union_all(
        sa.select(sa.literal("refund").label("kind"), refunds.c.id, refunds.c.as_of)
        .where(refunds.c.payment_intent == payment_intent),
        sa.select(sa.literal("dispute").label("kind"), disputes.c.id, disputes.c.as_of)
        .where(disputes.c.payment_intent == payment_intent),
        # The charge's snapshot only when no refund or dispute object is known: it sorts last.
        sa.select(sa.literal("charge").label("kind"), payment_refunds.c.charge_id, sa.literal(-1).label("as_of"))
        .where(payment_refunds.c.payment_intent == payment_intent, payment_refunds.c.charge_id.is_not(None)),
    ).subquery()
    return sa.select(news).order_by(news.c.as_of.desc()).limit(1)


_LATEST_CAUSE = prepared.hot("the latest refund or dispute", _latest_cause())  # asked for every payment granted
hot_insert_ignoring("a refund kept", refunds)
hot_insert_ignoring("a dispute kept", disputes)
hot_insert_ignoring("a charge's refunds kept", payment_refunds)


def news_of(payment_intent: sa.BindParameter[str]) -> sa.Label[bool]:
    """Whether :func:`latest_cause` finds anything for the payment (a refund, a dispute, or the charge's refunds):
    an EXISTS for the statement that pays an order (``RETURNING``, :mod:`backend.fulfilment`), which most payments
    answer with no, so that they need no statement of their own to read none. Its columns are named by nothing else
    (SQLite's RETURNING drops table names): ``payment_intent`` against the parameter, and ``charge_id``."""
    return sa.or_(
        sa.exists().where(refunds.c.payment_intent == payment_intent),
        sa.exists().where(disputes.c.payment_intent == payment_intent),
        sa.exists().where(payment_refunds.c.payment_intent == payment_intent, payment_refunds.c.charge_id.is_not(None)),
    ).label("clawback_news")


def latest_cause(conn: Connection, payment_intent: str) -> Cause | None:
    """The most recent refund or dispute of a payment, else its charge: what a settlement at fulfilment names.

    One query, since fulfilment asks it for every payment (most of which have no refund or dispute)."""
    row = prepared.run(conn, _LATEST_CAUSE, {"payment_intent": payment_intent}).first()
    return Cause(row["kind"], row["id"]) if row else None


# --- settling an order ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    outcome: Outcome  # CLAWED_BACK, GIVEN_BACK, NO_CHANGE or NOT_PAID
    order: Order
    credits: int = 0  # moved by this settlement: negative taken, positive given back


def settle(conn: Connection, order: Order, cause: Cause) -> Settlement:
    """Bring a paid order's clawback and status in line with its money facts; inside a write transaction
    that holds the order's row (``orders.by_* (lock=True)``)."""
    if order.status not in AFTER_PAYMENT or not order.payment_intent or order.amount_charged <= 0:
        return Settlement(Outcome.NOT_PAID, order)
    money = facts(conn, order.payment_intent, order.currency)
    target = credits_clawed_back(credits=order.credits, amount=order.amount_charged, refunded=money.refunded,
                                 disputed=money.disputed)
    delta = target - order.credits_clawed_back
    status = next_status(order.status, after_payment(
        amount=order.amount_charged, refunded=money.refunded, disputes_open=money.disputes_open,
        disputes_lost=money.disputes_lost,
    )) or order.status
    if delta:
        _post(conn, order, cause, -delta, money)
    if delta or status != order.status or (money.refunded, money.disputed) != (
        order.amount_refunded, order.amount_disputed
    ):
        order = orders.update(conn, order.id, credits_clawed_back=target, amount_refunded=money.refunded,
                              amount_disputed=money.disputed, status=status)
    if delta:
        metrics.credits_moved(Outcome.CLAWED_BACK if delta > 0 else Outcome.GIVEN_BACK, delta)
        log.info("payment order=%s session=%s user=%s outcome=%s credits=%d cause=%s status=%s",
                 order.id, order.session_id, order.user_id, Outcome.CLAWED_BACK if delta > 0 else Outcome.GIVEN_BACK,
                 abs(delta), cause.id, order.status)
        return Settlement(Outcome.CLAWED_BACK if delta > 0 else Outcome.GIVEN_BACK, order, -delta)
    return Settlement(Outcome.NO_CHANGE, order)


def _post(conn: Connection, order: Order, cause: Cause, credits: int, money: MoneyFacts) -> None:
    taking = credits < 0
    if cause.kind == "dispute":
        entry_type: entries.EntryType = "dispute" if taking else "dispute_reversal"
    else:
        entry_type = "refund" if taking else "refund_reversal"
    def amount(minor: int) -> str:  # in the currency's units, as the user's card statement says it
        return f"{currencies.value(minor, order.currency):.{currencies.digits(minor, order.currency)}f}"

    description = (
        f"{_describe(entry_type)} {order.pack_name} pack (refunded {amount(money.refunded)}, "
        f"disputed {amount(money.disputed)} of {amount(order.amount_charged)} {order.currency.upper()})"
    )
    # One entry per change, named by the object that caused it; a second change caused by the same
    # object (rare: several steps of rounding) gets the next number.
    reference = cause.id
    used = conn.execute(
        sa.select(sa.func.count()).where(
            ledger_entries.c.user_id == order.user_id, ledger_entries.c.type == entry_type,
            (ledger_entries.c.reference == cause.id)
            | ledger_entries.c.reference.startswith(f"{cause.id}#", autoescape=True),
        )
    ).scalar_one()
    if used:
        reference = f"{cause.id}#{used + 1}"
    ledger.locked_balance(conn, order.user_id)
    found = expiry.sweep_user(conn, order.user_id, datetime.now(UTC))  # grants past expiry first
    own = grants.of_purchase(conn, order.user_id, order.session_id) if order.session_id else None
    # Taking: the purchase's own grant first, then the burn order; past them, a debt on its own grant. Giving back:
    # to the grants this payment's clawbacks took from, latest first.
    allocation = grants.Consume(found, first=own) if taking else grants.GiveBack(
        grants.taken_by(conn, _clawback_entries(conn, order)), own)
    entry = ledger.post(conn, user_id=order.user_id, type=entry_type, amount=credits, reference=reference,
                        description=description, allocation=allocation)
    assert entry is not None


def _clawback_entries(conn: Connection, order: Order) -> list[int]:
    """The ids of the ledger entries this order's refunds and disputes posted (and their reversals)."""
    assert order.payment_intent
    causes = {order.payment_intent}
    for table in (refunds, disputes):
        causes.update(conn.execute(sa.select(table.c.id).where(table.c.payment_intent == order.payment_intent))
                      .scalars())
    causes.update(c for c in conn.execute(sa.select(payment_refunds.c.charge_id).where(
        payment_refunds.c.payment_intent == order.payment_intent)).scalars() if c)
    e = ledger_entries.c
    rows = conn.execute(sa.select(e.id, e.reference).where(
        e.user_id == order.user_id, e.type.in_(entries.CLAWBACK_TYPES + entries.CLAWBACK_REVERSAL_TYPES)))
    return [entry_id for entry_id, reference in rows if reference.split("#")[0] in causes]


def _describe(entry_type: str) -> str:
    return {"refund": "Refund of", "refund_reversal": "Refund reversed for", "dispute": "Dispute on",
            "dispute_reversal": "Dispute closed in your favour for"}[entry_type]


# --- Stripe's truth, re-read: what reconcile does for recently paid orders ---------------------------------


def matched_through_charge(conn: Connection, charge_id: str, payment_intent: str) -> int:
    """Name the payment of the refunds and disputes kept with only their charge; returns how many."""
    changed = 0
    for table in (refunds, disputes):
        changed += conn.execute(table.update().where(
            table.c.charge_id == charge_id, table.c.payment_intent.is_(None)).values(payment_intent=payment_intent)
        ).rowcount
    return changed


def unmatched_charges(conn: Connection, limit: int = 100) -> list[str]:
    """Charges named by refunds or disputes we keep without their payment."""
    query = sa.union(
        sa.select(refunds.c.charge_id).where(refunds.c.payment_intent.is_(None), refunds.c.charge_id.is_not(None)),
        sa.select(disputes.c.charge_id).where(disputes.c.payment_intent.is_(None), disputes.c.charge_id.is_not(None)),
    ).limit(limit)
    return [str(charge) for charge in conn.execute(query).scalars()]


def resync(conn: Connection, order: Order, stripe_refunds: Sequence[Mapping[str, Any]],
           stripe_disputes: Sequence[Mapping[str, Any]]) -> Settlement:
    """Bring what we keep of a paid order's refunds and disputes to what Stripe says now, then settle it.

    Inside a write transaction that holds the payment's lock and the order's row. An object we do not
    have is kept as of its creation; one whose status differs is kept as just newer than what we hold, so
    that any event still to come (made after the state Stripe shows) replaces it in turn. Settled even when
    nothing differs: a refund kept while its grant was not committed (an older version's race) is applied.
    """
    assert order.payment_intent
    cause: Cause | None = None
    sources: tuple[tuple[Kind, sa.Table, Sequence[Mapping[str, Any]]], ...] = (
        ("refund", refunds, stripe_refunds), ("dispute", disputes, stripe_disputes))
    for kind, table, objects in sources:
        for obj in objects:
            object_id, status = _id(obj.get("id")), obj.get("status")
            if object_id is None or not isinstance(status, str):
                continue
            stored = conn.execute(sa.select(table.c.as_of, table.c.status, table.c.payment_intent)
                                  .where(table.c.id == object_id)).mappings().first()
            if stored is not None and stored["status"] == status and stored["payment_intent"]:
                continue
            created = obj.get("created")
            as_of = stored["as_of"] + 1 if stored is not None else created if isinstance(created, int) else 0
            shaped = {**obj, "payment_intent": order.payment_intent}
            news = refund_news(shaped, as_of) if kind == "refund" else dispute_news(shaped, as_of)
            if news is None:
                continue
            if isinstance(news, RefundNews):
                record_refund(conn, news)
            else:
                record_dispute(conn, news)
            log.info("payment order=%s %s=%s outcome=resynced status=%s", order.id, kind, object_id,
                     _printable(status))
            cause = Cause(kind, object_id)
    cause = cause or latest_cause(conn, order.payment_intent) or Cause("charge", order.payment_intent)
    return settle(conn, order, cause)


# --- reading Stripe's objects -----------------------------------------------------------------------


def _id(value: Any) -> str | None:
    if isinstance(value, Mapping):  # expanded
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def payment_intent_of(obj: Mapping[str, Any]) -> str | None:
    """The payment intent a refund, dispute or charge belongs to."""
    return _id(obj.get("payment_intent"))


def _amount(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62 else None


def refund_news(obj: Mapping[str, Any], as_of: int) -> RefundNews | None:
    """A ``refund`` object as news; ``None`` when it lacks what the rule needs."""
    refund_id, amount, currency, status = _id(obj.get("id")), _amount(obj.get("amount")), obj.get("currency"), \
        obj.get("status")
    if obj.get("object") != "refund" or not refund_id or amount is None or not isinstance(currency, str) \
            or not isinstance(status, str):
        return None
    created = obj.get("created")
    return RefundNews(refund_id, _id(obj.get("payment_intent")), _id(obj.get("charge")), amount, currency.lower(),
                      status, as_of, created if isinstance(created, int) and not isinstance(created, bool) else None)


def dispute_news(obj: Mapping[str, Any], as_of: int) -> DisputeNews | None:
    dispute_id, amount, currency, status = _id(obj.get("id")), _amount(obj.get("amount")), obj.get("currency"), \
        obj.get("status")
    if obj.get("object") != "dispute" or not dispute_id or amount is None or not isinstance(currency, str) \
            or not isinstance(status, str):
        return None
    reason = obj.get("reason")
    return DisputeNews(dispute_id, _id(obj.get("payment_intent")), _id(obj.get("charge")), amount,
                       currency.lower(), status, reason if isinstance(reason, str) else None, as_of)


def charge_refunds_news(obj: Mapping[str, Any], as_of: int) -> ChargeRefundsNews | None:
    payment_intent, charge_id, refunded = _id(obj.get("payment_intent")), _id(obj.get("id")), \
        _amount(obj.get("amount_refunded"))
    if obj.get("object") not in (None, "charge") or not payment_intent or refunded is None:
        return None
    currency = obj.get("currency")
    return ChargeRefundsNews(payment_intent, charge_id or payment_intent, refunded,
                             currency.lower() if isinstance(currency, str) else None, as_of)
