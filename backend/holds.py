"""Holds: credits reserved for an operation whose cost is known once it has run, then settled, voided or expired.

Plain functions over a connection in the caller's write transaction; like every change of a user's credits, each
starts by locking the user's balance row (:func:`backend.ledger.locked_balance`). A hold is ``open`` until exactly
one of these happens to it:

- settled for an amount up to what it holds: that amount is spent by one ``spend`` entry (reference: the hold's id,
  the hold's description and feature) and the rest released. Settling for 0 spends nothing and writes no entry: the
  hold is ``settled`` with 0 spent, which says "the operation ran and cost nothing" apart from a void's "it did not
  run". A settle above the hold is refused (AmountAboveHold) and changes nothing;
- voided: everything is released and nothing enters the ledger (the credits never left);
- expired: at ``expires_at`` everything is released. Every read treats an open hold past ``expires_at`` as expired
  (:func:`reserved`, :meth:`Hold.status_at`), so no sweep is needed for that; :func:`sweep` only writes it down,
  once, with ``closed_at`` the instant it expired.

Each transition is one conditional ``UPDATE ... WHERE status = 'open' AND expires_at > now`` whose row count
decides, in the transaction that also writes the ledger entry: of racing settles and voids, on one process or on
replicas sharing a database, one changes the row and the others find it closed (HoldClosed) and write nothing. A
settle retried after it succeeded is refused like any other (the contract: once only).

The credits open holds reserve are not spendable: a spend and a new hold take only the *available* balance, the
balance less :func:`reserved`. The ledger itself knows nothing of holds; the callers (:mod:`backend.spending`) give
it what is reserved.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, and_, bindparam, func, insert, literal, select, update

from backend import expiry, grants, ledger, prepared
from backend.db import iso_utc
from backend.errors import AmountAboveHold, HoldClosed, IdempotencyConflict, InsufficientCredits, UnknownHold
from backend.schema import holds, ledger_entries

Status = Literal["open", "settled", "voided", "expired"]
OPEN: Status = "open"
SETTLED: Status = "settled"
VOIDED: Status = "voided"
EXPIRED: Status = "expired"
STATUSES: tuple[Status, ...] = (OPEN, SETTLED, VOIDED, EXPIRED)

DEFAULT_LIFETIME = timedelta(minutes=15)
MAX_LIFETIME = timedelta(hours=24)
ID_PREFIX = "hold_"
SETTLE_FINGERPRINT = "hold:"  # a settle's spend entry's fingerprint is this and the hold's id: no request digests so

h = holds.c
# The statements of every spend, hold and settle: built once (building a statement costs more than running it).
# Also read beside the spend controls as one statement (backend/spending.py).
RESERVED = prepared.hot("credits reserved by open holds", select(func.coalesce(func.sum(h.amount), 0)).where(
    h.user_id == bindparam("user_id"), h.status == bindparam("open"), h.expires_at > bindparam("now")))
_BY_KEY = prepared.hot("a hold by key", select(holds).where(
    h.user_id == bindparam("user_id"), h.idempotency_key == bindparam("key")))
_HOLD = prepared.hot("a hold", select(holds).where(h.id == bindparam("hold_id"), h.user_id == bindparam("user_id")))
_PLACE = prepared.hot("a hold placed", insert(holds))
_CLOSE = prepared.hot("a hold closed", update(holds).where(
    h.id == bindparam("hold_id"), h.status == OPEN, h.expires_at > bindparam("now"),
).values(status=bindparam("to"), closed_at=bindparam("now"), settled_amount=bindparam("settled"),
         transaction_id=bindparam("entry")))
_SWEEP_USER = prepared.hot("a user's expired holds written down", update(holds).where(
    h.user_id == bindparam("of_user"), h.status == OPEN, h.expires_at <= bindparam("now"),
).values(status=EXPIRED, closed_at=h.expires_at))


@dataclass(frozen=True)
class Hold:
    id: str
    user_id: int
    amount: int
    status: str  # as stored: an open hold past expires_at is expired all the same (status_at)
    idempotency_key: str
    fingerprint: str
    description: str
    feature: str | None
    created_at: str
    expires_at: str
    closed_at: str | None
    settled_amount: int | None
    transaction_id: int | None
    available_after: int

    @classmethod
    def from_row(cls, row: Any) -> Hold:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def status_at(self, now: datetime) -> str:
        if self.status == OPEN and self.expires_at <= iso_utc(now):
            return EXPIRED
        return self.status

    def as_json(self, now: datetime) -> dict[str, Any]:
        """The hold as ``GET /api/credits/holds`` lists it. ``spent`` and ``released`` are null while it is open."""
        status = self.status_at(now)
        spent = None if status == OPEN else (self.settled_amount or 0)
        return {
            "id": self.id, "amount": self.amount, "status": status, "description": self.description,
            "feature": self.feature, "createdAt": self.created_at, "expiresAt": self.expires_at,
            "closedAt": self.closed_at or (self.expires_at if status == EXPIRED else None),
            "spent": spent, "released": None if spent is None else self.amount - spent,
            "transactionId": self.transaction_id,
        }


@dataclass(frozen=True)
class SettledHold:
    transaction_id: int | None  # None for a settle of 0, which writes no entry
    spent: int
    released: int
    balance: int
    # The balance as the settle found it (grants already past their expiry written down): auto top-up's "before".
    # Not balance + spent: the credits a hold spared, expiring at the settle, also leave the balance in it.
    before: int


@dataclass(frozen=True)
class ReleasedHold:
    released: int
    balance: int


def reserved(conn: Connection, user_id: int, now: datetime) -> int:
    """The credits the user's open, unexpired holds reserve at ``now``."""
    return int(prepared.run(conn, RESERVED, {"user_id": user_id, "open": OPEN, "now": iso_utc(now)}).scalar_one())


def new_id() -> str:
    return ID_PREFIX + secrets.token_urlsafe(18)


def place(
    conn: Connection,
    *,
    user_id: int,
    amount: int,
    idempotency_key: str,
    fingerprint: str,
    description: str,
    feature: str | None,
    lifetime: timedelta,
    now: datetime,
    reserved_now: int,
    check: Callable[[int], None] | None = None,
) -> tuple[Hold, bool]:
    """Reserve ``amount`` once per idempotency key; returns the hold and whether it is new.

    As :func:`backend.ledger.spend` does for a spend: a key seen before answers with its hold (another
    ``fingerprint`` is IdempotencyConflict); the available balance (the balance less ``reserved_now``) must cover
    the amount; then ``check`` (the spend controls) is called with the available balance and may refuse by raising.
    """
    if amount <= 0:
        raise ValueError("a hold reserves a positive number of credits")
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise ValueError(f"a hold lives at most {MAX_LIFETIME}")
    balance = ledger.locked_balance(conn, user_id)
    row = prepared.run(conn, _BY_KEY, {"user_id": user_id, "key": idempotency_key}).first()
    if row is not None:
        if row["fingerprint"] != fingerprint:
            raise IdempotencyConflict(idempotency_key)
        return Hold.from_row(row), False
    available = balance - reserved_now
    if amount > available:
        raise InsufficientCredits(balance, amount, reserved_now)
    if check is not None:
        check(available)
    hold = Hold(
        id=new_id(), user_id=user_id, amount=amount, status=OPEN, idempotency_key=idempotency_key,
        fingerprint=fingerprint, description=description, feature=feature, created_at=iso_utc(now),
        expires_at=iso_utc(now + lifetime), closed_at=None, settled_amount=None, transaction_id=None,
        available_after=available - amount,
    )
    prepared.run(conn, _PLACE, asdict(hold))
    return hold, True


def get(conn: Connection, user_id: int, hold_id: str) -> Hold:
    """The user's hold ``hold_id``; UnknownHold for another user's or none."""
    row = prepared.run(conn, _HOLD, {"hold_id": hold_id, "user_id": user_id}).first()
    if row is None:
        raise UnknownHold(hold_id)
    return Hold.from_row(row)


def settle(conn: Connection, user_id: int, hold_id: str, amount: int, now: datetime) -> SettledHold:
    """Spend ``amount`` (0 up to the hold's) of an open hold, once, and release the rest."""
    if amount < 0:
        raise ValueError("a settle spends zero or more credits")
    ledger.locked_balance(conn, user_id)
    found = expiry.sweep_user(conn, user_id, now)  # grants past expiry first (what the hold reserved is spared)
    balance = ledger.locked_balance(conn, user_id)
    hold = _open(conn, user_id, hold_id, now)
    if amount > hold.amount:
        raise AmountAboveHold(amount, hold.amount)
    if amount == 0:
        _close(conn, hold, SETTLED, now, settled=0)
        return SettledHold(None, 0, hold.amount, _release_spared(conn, user_id, now, found, balance), balance)
    if amount > balance:  # only where a clawback took reserved credits back: the ledger never goes below zero
        raise InsufficientCredits(balance, amount)
    entry = ledger.post(
        conn, user_id=user_id, type="spend", amount=-amount, reference=hold.id, description=hold.description,
        fingerprint=SETTLE_FINGERPRINT + hold.id, feature=hold.feature, created_at=iso_utc(now),
        allocation=grants.Consume(found),  # in the burn order, as a spend
    )
    if entry is None:  # a spend whose idempotency key was this hold's id took the reference: nothing is written
        raise IdempotencyConflict(hold.id)
    _close(conn, hold, SETTLED, now, settled=amount, entry=entry.id)  # raising, it takes the entry back with it
    return SettledHold(entry.id, amount, hold.amount - amount,
                       _release_spared(conn, user_id, now, found, entry.balance_after), balance)


def void(conn: Connection, user_id: int, hold_id: str, now: datetime) -> ReleasedHold:
    """Release all of an open hold, once; the ledger is not touched, but for spared credits the hold kept from
    expiring (they expire now: :func:`_release_spared`)."""
    balance = ledger.locked_balance(conn, user_id)
    hold = _open(conn, user_id, hold_id, now)
    _close(conn, hold, VOIDED, now)
    return ReleasedHold(hold.amount, _release_spared(conn, user_id, now, None, balance))


def _release_spared(conn: Connection, user_id: int, now: datetime, found: list[grants.Grant] | None,
                    balance: int) -> int:
    """After a hold closed at ``now``: the spared credits (of grants past expiry) that the holds still open no
    longer reserve expire at this instant (:func:`backend.expiry.plan`); returns the balance after. ``found``: the
    user's grants before the close, when known (none spared: nothing to do, nothing read)."""
    if found is not None and not any(expiry.spared(grant) for grant in found):
        return balance
    expiry.sweep_user(conn, user_id, now)
    return ledger.balance(conn, user_id)


def _open(conn: Connection, user_id: int, hold_id: str, now: datetime) -> Hold:
    """The hold, read under the user's balance lock (which every transition takes first); HoldClosed unless open."""
    hold = get(conn, user_id, hold_id)
    if hold.status_at(now) != OPEN:
        raise HoldClosed(hold.id, hold.status_at(now))
    return hold


def _close(conn: Connection, hold: Hold, status: Status, now: datetime, *, settled: int | None = None,
           entry: int | None = None) -> None:
    """The transition itself: the row changes only if it is still open and unexpired, whatever was read before
    (a sweep does not take the balance lock); otherwise HoldClosed, and the caller's transaction rolls back."""
    changed = prepared.run(conn, _CLOSE, {"hold_id": hold.id, "now": iso_utc(now), "to": status,
                                          "settled": settled, "entry": entry}).rowcount
    if changed != 1:
        raise HoldClosed(hold.id, get(conn, hold.user_id, hold.id).status_at(now))


def sweep(conn: Connection, now: datetime, user_id: int | None = None) -> int:
    """Write down the expiry of every open hold past ``expires_at`` (of one user, or all), once each: ``closed_at``
    is the instant it expired. Returns how many it marked."""
    if user_id is not None:
        return prepared.run(conn, _SWEEP_USER, {"of_user": user_id, "now": iso_utc(now)}).rowcount
    return int(conn.execute(update(holds).where(h.status == OPEN, h.expires_at <= iso_utc(now))
                            .values(status=EXPIRED, closed_at=h.expires_at)).rowcount)


def recent(conn: Connection, user_id: int, *, limit: int = 50) -> list[Hold]:
    """The user's newest holds, newest first, whatever their status."""
    rows = conn.execute(select(holds).where(h.user_id == user_id)
                        .order_by(h.created_at.desc(), h.id.desc()).limit(limit)).mappings().all()
    return [Hold.from_row(row) for row in rows]


def open_holds(conn: Connection, user_id: int, now: datetime) -> list[Hold]:
    """The user's holds that reserve credits at ``now``, oldest first."""
    rows = conn.execute(select(holds).where(h.user_id == user_id, h.status == OPEN, h.expires_at > iso_utc(now))
                        .order_by(h.created_at, h.id)).mappings().all()
    return [Hold.from_row(row) for row in rows]


def problems(conn: Connection, now: datetime) -> list[str]:
    """Every way the holds disagree with the ledger, as sentences (for ``creditdesk-backend check``): a hold open
    past its expiry (after a sweep there is none), a settled hold whose spend entry is missing or of another amount,
    a hold that spent nothing with a spend entry all the same. A settle's entry is known by its fingerprint
    (``hold:<id>``): a spend whose own idempotency key happens to be a hold's id is not taken for it."""
    found: list[str] = []
    moment = iso_utc(now)
    for (hold_id, expires_at) in conn.execute(
        select(h.id, h.expires_at).where(h.status == OPEN, h.expires_at <= moment).order_by(h.expires_at)
    ):
        found.append(f"hold {hold_id}: open past its expiry at {expires_at}")
    e = ledger_entries.c
    joined = holds.outerjoin(ledger_entries, and_(e.user_id == h.user_id, e.type == "spend", e.reference == h.id,
                                                  e.fingerprint == literal(SETTLE_FINGERPRINT) + h.id))
    rows = conn.execute(
        select(h.id, h.amount, h.status, h.settled_amount, h.transaction_id, e.id.label("entry_id"),
               e.amount.label("entry_amount")).select_from(joined).order_by(h.created_at, h.id)
        .execution_options(stream_results=True, yield_per=20_000)
    )
    for hold_id, amount, status, settled, transaction_id, entry_id, entry_amount in rows:
        if status not in STATUSES:
            found.append(f"hold {hold_id}: unknown status {status!r}")
        if status != SETTLED or not settled:
            if entry_id is not None:
                found.append(f"hold {hold_id}: {status} with nothing spent, yet spend entry {entry_id} names it")
            if status == SETTLED and settled is None:
                found.append(f"hold {hold_id}: settled without a settled amount")
            continue
        if not 0 < settled <= amount:
            found.append(f"hold {hold_id}: settled for {settled} of {amount}")
        if entry_id is None:
            found.append(f"hold {hold_id}: settled for {settled} without a spend entry")
        elif entry_amount != -settled or entry_id != transaction_id:
            found.append(f"hold {hold_id}: settled for {settled} as transaction {transaction_id}, but spend entry "
                         f"{entry_id} took {-entry_amount}")
    return found
