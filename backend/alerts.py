"""Alerts: what happened to a user's credits, made in the same transaction as the change that caused it.

The ledger calls :func:`on_ledger_entry` for every entry it posts (low balance, clawbacks and their
reversals); order changes call :func:`on_order_status` (purchases confirmed, failed, expired); the spend
path calls :func:`on_cap_usage` and :func:`on_cap_refused`. An alert therefore exists exactly when its
cause committed: a rolled-back spend leaves no alert, and a committed one cannot lose its alert.

Exactly once per crossing:
- A low-balance threshold is *armed* or not. The entry that takes the balance below an armed threshold makes
  one alert and disarms it; an entry that takes the balance above it (strictly) re-arms it. So a balance that
  hovers at the threshold (99, 100, 99, ...) alerts once, not each time. A new threshold starts armed unless
  the balance is already below it. Every change of a user's balance holds that user's balance row locked
  (see :mod:`backend.ledger`), so concurrent spends that cross a threshold together are seen one after the
  other: the first disarms it and makes the one alert.
- Cap and purchase alerts carry a ``dedupe_key`` (the cap, its period and the period's first day; the
  order) that the database keeps unique per user, whichever replica writes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Label,
    RowMapping,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)

from backend import entries, prepared
from backend.db import hot_insert_ignoring, insert_ignoring_duplicates, iso_utc, utcnow
from backend.order_status import EXPIRED, FAILED, PAID, PENDING
from backend.schema import alerts, low_balance_thresholds

if TYPE_CHECKING:
    from backend.orders import Order
    from backend.periods import Window

Kind = Literal["low_balance", "cap_80", "cap_100", "purchase_confirmed", "purchase_failed", "purchase_expired",
               "clawback", "clawback_reversed", "credits_expiring", "test", "topup_succeeded", "topup_threshold",
               "topup_failed", "topup_limit", "topup_undone"]
KINDS: tuple[str, ...] = get_args(Kind)
PERIOD_WORDS = {"day": "daily", "week": "weekly", "month": "monthly"}


@dataclass(frozen=True)
class Alert:
    id: int
    kind: str
    created_at: str
    read_at: str | None
    message: str
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> Alert:
        return cls(id=row["id"], kind=row["kind"], created_at=row["created_at"], read_at=row["read_at"],
                   message=row["message"], data=json.loads(row["data"]))

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "kind": self.kind, "createdAt": self.created_at, "readAt": self.read_at,
                "message": self.message, "data": self.data}


def create(conn: Connection, user_id: int, kind: Kind, message: str, data: Mapping[str, Any], *,
           dedupe_key: str | None = None) -> bool:
    """Add an alert; with a ``dedupe_key``, only if this user has none with that key. Returns whether it was
    added. Runs inside the caller's transaction."""
    values = {"user_id": user_id, "kind": kind, "message": message, "data": json.dumps(dict(data)),
              "created_at": utcnow(), "read_at": None, "dedupe_key": dedupe_key}
    if dedupe_key is None:
        conn.execute(insert(alerts).values(values))
        return True
    return insert_ignoring_duplicates(conn, alerts, values) is not None


def credits(n: int) -> str:
    return f"{n:,} credit" if abs(n) == 1 else f"{n:,} credits"


def credits_were(n: int) -> str:
    """``1 credit was`` or ``41 credits were``: the subject of a sentence about credits moved."""
    return f"{credits(n)} was" if abs(n) == 1 else f"{credits(n)} were"


# -- what causes alerts ---------------------------------------------------------------------------------------


def on_ledger_entry(conn: Connection, entry: entries.Entry, *, thresholds_moved: bool = True) -> None:
    """Called by the ledger for each entry it posts, after the user's balance row is locked. ``thresholds_moved``
    False: the ledger's own statement found none of the user's thresholds crossed or re-armed by the balance after
    the entry (:func:`thresholds_moved`), so they are not read again."""
    if thresholds_moved:
        _low_balance(conn, entry)
    if entry.type in entries.CLAWBACK_TYPES:
        cause = "a dispute" if entry.type == "dispute" else "a refund"
        create(conn, entry.user_id, "clawback",
               f"{credits_were(-entry.amount)} taken back because of {cause}: {entry.description or entry.reference}. "
               f"Your balance is now {credits(entry.balance_after)}.",
               {"transactionId": entry.id, "type": entry.type, "amount": entry.amount,
                "balance": entry.balance_after, "reference": entry.reference})
    elif entry.type in entries.CLAWBACK_REVERSAL_TYPES:
        create(conn, entry.user_id, "clawback_reversed",
               f"{credits_were(entry.amount)} given back: {entry.description or entry.reference}. "
               f"Your balance is now {credits(entry.balance_after)}.",
               {"transactionId": entry.id, "type": entry.type, "amount": entry.amount,
                "balance": entry.balance_after, "reference": entry.reference})


# Run for every ledger entry: built once (building a statement costs more than running it).
_THRESHOLDS = prepared.hot("thresholds", select(low_balance_thresholds.c.threshold, low_balance_thresholds.c.armed)
                           .where(low_balance_thresholds.c.user_id == bindparam("user_id")))
hot_insert_ignoring("an alert made", alerts)


def thresholds_moved(balance: ColumnElement[int], user_id: BindParameter[int]) -> Label[int]:
    """How many of the user's low-balance thresholds ``balance`` crosses (armed, and the balance below it) or re-arms
    (disarmed, and the balance above it): :func:`_low_balance` does nothing when none does. A scalar subquery for the
    ledger's statement that moves the balance, in its ``RETURNING`` (after the move): ``balance`` names that
    statement's column whole (SQLite's RETURNING drops table names, so the subquery's own columns are named by
    nothing else: ``threshold``, ``armed``, and ``user_id`` against the parameter)."""
    t = low_balance_thresholds.c
    return (select(func.count()).where(t.user_id == user_id, or_(
        and_(t.armed.is_(True), balance < t.threshold), and_(t.armed.is_(False), balance > t.threshold)))
        .scalar_subquery().label("thresholds_moved"))


def _low_balance(conn: Connection, entry: entries.Entry) -> None:
    t = low_balance_thresholds.c
    balance = entry.balance_after
    found = prepared.run(conn, _THRESHOLDS, {"user_id": entry.user_id}).rows
    rows = [(row["threshold"], row["armed"]) for row in found]
    crossed = sorted((threshold for threshold, armed in rows if armed and balance < threshold), reverse=True)
    rearmed = [threshold for threshold, armed in rows if not armed and balance > threshold]
    if crossed:
        conn.execute(update(low_balance_thresholds).where(t.user_id == entry.user_id, t.threshold.in_(crossed))
                     .values(armed=False))
        lowest = crossed[-1]
        create(conn, entry.user_id, "low_balance",
               f"Your balance is {credits(balance)}, below your alert level of {credits(lowest)}.",
               {"threshold": lowest, "thresholds": crossed, "balance": balance, "transactionId": entry.id})
    if rearmed:
        conn.execute(update(low_balance_thresholds).where(t.user_id == entry.user_id, t.threshold.in_(rearmed))
                     .values(armed=True))


def set_thresholds(conn: Connection, user_id: int, thresholds: Iterable[int], balance: int) -> None:
    """Replace the user's low-balance thresholds. Call with the balance row locked. One that stays keeps its
    state; a new one starts armed if the balance is at or above it (a balance already below a new threshold
    is not news: it alerts once the balance has risen above it and fallen again)."""
    t = low_balance_thresholds.c
    wanted = set(thresholds)
    existing = {row.threshold for row in conn.execute(select(t.threshold).where(t.user_id == user_id))}
    gone = existing - wanted
    if gone:
        conn.execute(low_balance_thresholds.delete().where(t.user_id == user_id, t.threshold.in_(gone)))
    for threshold in sorted(wanted - existing):
        conn.execute(insert(low_balance_thresholds).values(user_id=user_id, threshold=threshold,
                                                           armed=balance >= threshold))


def on_cap_usage(conn: Connection, user_id: int, *, period: str, cap: int, used: int, window: Window) -> None:
    """After a spend: ``used`` of ``cap`` is now spent in this ``period``'s ``window``."""
    word = PERIOD_WORDS[period]
    data = {"period": period, "cap": cap, "used": used, "resetsAt": iso_utc(window.end)}
    if used >= cap:
        create(conn, user_id, "cap_100", f"You have reached your {word} cap: {used:,} of {credits(cap)} spent. "
               "Further spends are refused until it resets.", data, dedupe_key=_cap_key("cap_100", period, cap, window))
    elif used * 5 >= cap * 4:
        create(conn, user_id, "cap_80", f"You have spent {used * 100 // cap} % of your {word} cap: {used:,} of "
               f"{credits(cap)}.", data, dedupe_key=_cap_key("cap_80", period, cap, window))


def on_cap_refused(conn: Connection, user_id: int, *, period: str, cap: int, used: int, window: Window) -> None:
    """A spend was refused by this cap: the cap is reached for the user, even if not to the last credit (the alert
    says so as it is: a spend that would have gone over, with what is left)."""
    word = PERIOD_WORDS[period]
    if used >= cap:
        message = (f"You have reached your {word} cap: {used:,} of {credits(cap)} spent, and a spend was refused. "
                   "Further spends are refused until it resets.")
    else:
        message = (f"A spend was refused: it would have gone over your {word} cap ({used:,} of {credits(cap)} "
                   f"spent, {credits(cap - used)} left). Spends that fit in what is left still go through until it "
                   "resets.")
    create(conn, user_id, "cap_100", message,
           {"period": period, "cap": cap, "used": used, "resetsAt": iso_utc(window.end)},
           dedupe_key=_cap_key("cap_100", period, cap, window))


def _cap_key(kind: str, period: str, cap: int, window: Window) -> str:
    return f"{kind}:{period}:{window.first.isoformat()}:{cap}"


def on_order_status(conn: Connection, order: Order, old: str, new: str) -> None:
    """An order moved from ``old`` to ``new`` (call it in the transaction that moves it)."""
    data = {"orderId": order.id, "sessionId": order.session_id, "packId": order.pack_id, "packName": order.pack_name,
            "credits": order.credits, "amount": order.amount, "currency": order.currency}
    if new == PAID and old != PAID:
        if order.provider == "auto_topup":
            return  # announced by its own alert, with its Undo (topup_succeeded, backend/autotopup.py)
        create(conn, order.user_id, "purchase_confirmed",
               f"Your purchase of the {order.pack_name} pack went through: {credits(order.credits)} added.", data,
               dedupe_key=f"purchase_confirmed:{order.id}")
    elif new == FAILED and old != FAILED:
        create(conn, order.user_id, "purchase_failed",
               f"Your payment for the {order.pack_name} pack failed; nothing was charged and no credits were added.",
               data, dedupe_key=f"purchase_failed:{order.id}")
    elif new == EXPIRED and old == PENDING:  # not after the customer cancelled: they know
        create(conn, order.user_id, "purchase_expired",
               f"Your checkout for the {order.pack_name} pack expired before it was paid; nothing was charged.",
               data, dedupe_key=f"purchase_expired:{order.id}")


def send_test(conn: Connection, user_id: int) -> Alert:
    create(conn, user_id, "test", "This is a test notification from Creditdesk. Alerts reach you like this.", {})
    row = conn.execute(select(alerts).where(alerts.c.user_id == user_id).order_by(alerts.c.id.desc()).limit(1))
    return Alert.from_row(row.mappings().one())


# -- the inbox ------------------------------------------------------------------------------------------------


def page(conn: Connection, user_id: int, *, unread_only: bool, limit: int,
         before: int | None = None) -> tuple[list[Alert], int | None]:
    """A page of the user's alerts, newest first, and the cursor of the next (older) page, if any."""
    query = select(alerts).where(alerts.c.user_id == user_id)
    if unread_only:
        query = query.where(alerts.c.read_at.is_(None))
    if before is not None:
        query = query.where(alerts.c.id < before)
    rows = conn.execute(query.order_by(alerts.c.id.desc()).limit(limit + 1)).mappings().all()
    found = [Alert.from_row(row) for row in rows[:limit]]
    return found, (found[-1].id if len(rows) > limit else None)


def mark_read(conn: Connection, user_id: int, ids: Iterable[int] | None) -> int:
    """Mark the user's alerts ``ids`` (all of them when ``None``) read; others' ids are ignored. Returns how
    many of the user's alerts are still unread."""
    unread = (alerts.c.user_id == user_id) & alerts.c.read_at.is_(None)
    chosen = list(ids) if ids is not None else None
    if chosen is None:
        conn.execute(update(alerts).where(unread).values(read_at=utcnow()))
    elif chosen:
        conn.execute(update(alerts).where(unread, alerts.c.id.in_(chosen)).values(read_at=utcnow()))
    return unread_count(conn, user_id)


def unread_count(conn: Connection, user_id: int) -> int:
    return conn.execute(
        select(func.count()).select_from(alerts).where(alerts.c.user_id == user_id, alerts.c.read_at.is_(None))
    ).scalar_one()
