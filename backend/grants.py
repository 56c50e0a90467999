"""Grants: the lots a user's credits come in, each paid or promotional, with an optional expiry (issue 19).

A purchase makes a paid grant (one INSERT, on the webhook's path), ``adjust`` a paid one and ``adjust --promotional``
a promotional one (either with ``--expires``), the catalogue's ``[signup_bonus]`` a promotional one when an account is
made; migration 0016 made one paid grant without expiry of each user's balance then. The user's grants' ``remaining``
always sum to their balance, and every ledger entry says which grants it took from or gave to
(``grant_allocations``); ``creditdesk-backend check`` proves both (:func:`problems`).

**The burn order.** A spend, a hold's settle and a negative adjustment take credits from the grants in one order:

1. credits a hold kept from expiring (below) first: their grant has expired already;
2. promotional before paid;
3. earliest expiry first, grants without an expiry last;
4. oldest first (then by id).

**Clawbacks** (refunds, disputes) take from the purchase's own grant first, then in the burn order; what is left is a
debt, kept as that grant's negative ``remaining`` (a grant of ``source`` ``debt`` where the purchase has none). New
credits repay debts first. A **reversal** (a refund that failed, a dispute won) repays debts, then gives back to the
grants this payment's clawbacks took from, latest first, up to what each lost; what would go to a grant that has
expired since goes to the purchase's own grant instead (it is not revived: a reversal gives back credits, not time).

**Expiry** is one ``expiry`` ledger entry per grant (reference ``grant:<id>``) with ``created_at`` its expiry
instant, written once: the first writer under the user's balance lock marks the grant expired in the same
transaction; the unique reference stops any other. Every change of a user's credits (spend, hold, settle, clawback,
adjustment) first writes down their grants past expiry (:func:`sweep_user`), the sweeper (:func:`sweep`, run by
``serve`` and ``check``) does it for everyone, and every read treats a grant past its expiry as expired
(:func:`view`), so the moment the sweep runs does not change any figure.

**Holds and expiry.** Open holds reserve the first credits in the burn order. When a grant expires, the part of it
that open holds reserve at that instant is spared: it does not expire (it stays in the grant, first in the burn
order), since those credits could not be used while held; the rest expires. So an expiry never leaves the available
balance (balance less holds) below zero, and a settle finds its credits. The clock only pauses while they are held:
when a hold closes (settled, voided, expired), the spared credits the holds still open that were placed by their
grant's expiry no longer reserve expire at that instant (one more ``expiry`` entry, reference ``grant:<id>:<n>``;
:func:`backend.expiry.plan`), and ``check`` proves no spared credits exceed what those holds reserve.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, func, insert, select, update

from backend import alerts, prepared
from backend.db import iso_utc
from backend.entries import Entry
from backend.schema import grant_allocations, grants, holds, ledger_entries

Kind = Literal["paid", "promotional"]
PAID: Kind = "paid"
PROMOTIONAL: Kind = "promotional"
KINDS: tuple[str, ...] = (PAID, PROMOTIONAL)
SOURCES = ("purchase", "adjustment", "signup", "migration", "debt", "reversal")
EXPIRY_PREFIX = "grant:"
# When the credits_expiring alerts come, before a grant expires (CREDITDESK_EXPIRY_WARNINGS).
DEFAULT_WARNINGS: tuple[timedelta, ...] = (timedelta(days=7), timedelta(days=1))

g = grants.c
# The statements of every spend and purchase: built once.
_LIVE = prepared.hot("a user's grants with credits", select(grants).where(
    g.user_id == bindparam("user_id"), g.remaining != 0))
_MAKE = prepared.hot("a grant made", insert(grants))
_SET_REMAINING = prepared.hot("a grant's remaining set", update(grants).where(g.id == bindparam("grant_id"))
                              .values(remaining=bindparam("to")))
_ALLOCATE = prepared.hot("an allocation", insert(grant_allocations))

@dataclass(frozen=True)
class Grant:
    id: int
    user_id: int
    kind: str
    source: str
    reference: str
    description: str
    amount: int
    opening: int
    remaining: int
    created_at: str
    expires_at: str | None
    expired_at: str | None
    entry_id: int | None

    @classmethod
    def from_row(cls, row: Any) -> Grant:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def due(self, now: str) -> bool:
        """Past its expiry with credits, and not yet written down as expired (an empty grant has nothing to expire)."""
        return self.expired_at is None and self.expires_at is not None and self.expires_at <= now \
            and self.remaining > 0

    def gone(self, now: str) -> bool:
        """Expired, or past its expiry: it takes nothing back."""
        return self.expired_at is not None or (self.expires_at is not None and self.expires_at <= now)

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "kind": self.kind, "source": self.source, "description": self.description,
                "amount": self.amount, "remaining": self.remaining, "createdAt": self.created_at,
                "expiresAt": None if self.expired_at else self.expires_at, "expiredAt": self.expired_at}


def burn_key(grant: Grant) -> tuple[object, ...]:
    """Where a grant stands in the burn order (see the module's docstring)."""
    return (grant.expired_at is None, grant.kind != PROMOTIONAL, grant.expires_at is None, grant.expires_at or "",
            grant.created_at, grant.id)


def in_burn_order(found: Iterable[Grant]) -> list[Grant]:
    return sorted((grant for grant in found if grant.remaining > 0), key=burn_key)


# --- reading -----------------------------------------------------------------------------------------


def live(conn: Connection, user_id: int) -> list[Grant]:
    """The user's grants that hold credits (or a debt), as stored: one past its expiry may not be written down yet."""
    return [Grant.from_row(row) for row in prepared.run(conn, _LIVE, {"user_id": user_id}).rows]


def summary(found: Sequence[Grant]) -> dict[str, object]:
    """What the balance answer says of the grants: paid and promotional credits, and the next expiry."""
    paid = sum(s.remaining for s in found if s.kind == PAID)
    promotional = sum(s.remaining for s in found if s.kind == PROMOTIONAL)
    upcoming = sorted((s for s in found if s.remaining > 0 and s.expired_at is None and s.expires_at),
                      key=lambda s: s.expires_at or "")
    next_expiry = None
    if upcoming:
        first = upcoming[0].expires_at
        next_expiry = {"at": first, "credits": sum(s.remaining for s in upcoming if s.expires_at == first)}
    return {"paid": paid, "promotional": promotional, "nextExpiry": next_expiry}


# --- writing: how an entry is allocated (backend.ledger.post does it for every entry it posts) ----------------


@dataclass(frozen=True)
class NewGrant:
    """A crediting entry makes a grant of its credits (less any debt they repay)."""

    kind: Kind = PAID
    source: str | None = None  # None: by the entry's type (purchase, adjustment, signup, reversal)
    description: str | None = None  # None: the entry's
    expires_at: str | None = None


@dataclass(frozen=True)
class Consume:
    """A debiting entry takes from ``first`` (a clawback's purchase's own grant), then the burn order; ``found`` are
    the user's grants when the caller has them already (one SELECT fewer), else they are read."""

    found: Sequence[Grant] | None = None
    first: Grant | None = None


@dataclass(frozen=True)
class GiveBack:
    """A reversal: debts first, then what ``taken`` lost (latest first), then ``own`` or a new grant."""

    taken: Sequence[tuple[int, int]] = ()
    own: Grant | None = None


@dataclass(frozen=True)
class ByCaller:
    """The caller allocates the entry itself (an expiry: backend/expiry.py)."""


Allocation = NewGrant | Consume | GiveBack | ByCaller
SOURCE_OF_TYPE = {"purchase": "purchase", "adjustment": "adjustment", "refund_reversal": "reversal",
                  "dispute_reversal": "reversal"}


def allocate(conn: Connection, entry: Entry, how: Allocation | None) -> None:
    """Allocate a newly posted entry to the user's grants as ``how`` says; None: a crediting entry makes a paid grant
    (a reversal gives back as :class:`GiveBack` with nothing known), a debiting one takes in the burn order."""
    if how is None:
        if entry.type in ("refund_reversal", "dispute_reversal"):
            how = GiveBack()
        else:
            how = NewGrant() if entry.amount > 0 else Consume()
    match how:
        case ByCaller():
            return
        case NewGrant():
            make(conn, entry=entry, kind=how.kind, source=how.source or SOURCE_OF_TYPE.get(entry.type, "adjustment"),
                 description=how.description or entry.description or "Credits", expires_at=how.expires_at)
        case Consume():
            consume(conn, entry, live(conn, entry.user_id) if how.found is None else how.found, first=how.first)
        case GiveBack():
            give_back(conn, entry, how.taken, how.own)


def allocate_to(conn: Connection, entry_id: int, grant_id: int, amount: int) -> None:
    prepared.run(conn, _ALLOCATE, {"entry_id": entry_id, "grant_id": grant_id, "amount": amount})


def move(conn: Connection, grant: Grant, entry_id: int, amount: int) -> Grant:
    moved = replace(grant, remaining=grant.remaining + amount)
    prepared.run(conn, _SET_REMAINING, {"grant_id": grant.id, "to": moved.remaining})
    allocate_to(conn, entry_id, grant.id, amount)
    return moved


def make(conn: Connection, *, entry: Entry, kind: Kind, source: str, description: str,
         expires_at: str | None = None) -> None:
    """The grant of a crediting entry (a purchase, a positive adjustment, a sign-up bonus): one INSERT. Credits repay
    any debt first (only a balance below zero before the entry has one)."""
    if entry.amount <= 0:
        raise ValueError("a grant holds a positive number of credits")
    opening = entry.amount
    if entry.balance_after - entry.amount < 0:
        opening = _repay(conn, entry, opening)
    prepared.run(conn, _MAKE, {
        "user_id": entry.user_id, "kind": kind, "source": source, "reference": entry.reference,
        "description": description, "amount": entry.amount, "opening": opening, "remaining": opening,
        "created_at": entry.created_at, "expires_at": expires_at, "expired_at": None, "entry_id": entry.id,
    })


def _repay(conn: Connection, entry: Entry, credits: int) -> int:
    """Repay the user's debts (grants below zero) from ``credits``, oldest first; returns what is left."""
    for debt in sorted((s for s in live(conn, entry.user_id) if s.remaining < 0), key=lambda s: s.id):
        paid = min(-debt.remaining, credits)
        if paid:
            move(conn, debt, entry.id, paid)
            credits -= paid
    return credits


def consume(conn: Connection, entry: Entry, found: Sequence[Grant], *, first: Grant | None = None) -> None:
    """Allocate a debiting entry (a spend, a settle, a negative adjustment, a clawback) to the grants: ``first`` (a
    clawback's purchase's own grant) first, then the burn order; what the grants do not hold becomes a debt on
    ``first`` or a new debt grant. ``found`` are the user's grants after :func:`sweep_user`."""
    need = -entry.amount
    if need <= 0:
        raise ValueError("only an entry that takes credits consumes grants")
    order = in_burn_order(found)
    if first is not None and first.remaining > 0:
        order = [first, *(s for s in order if s.id != first.id)]
    moves: dict[int, int] = {}
    grants_by_id = {s.id: s for s in order}
    for grant in order:
        take = min(grant.remaining, need)
        if take > 0:
            moves[grant.id] = -take
            need -= take
        if not need:
            break
    if need:
        debtor = first if first is not None else _new(conn, entry, PAID, "debt", "Credits owed", 0)
        grants_by_id.setdefault(debtor.id, debtor)
        moves[debtor.id] = moves.get(debtor.id, 0) - need
    _apply(conn, entry.id, grants_by_id, moves)


def _apply(conn: Connection, entry_id: int, grants_by_id: dict[int, Grant], moves: dict[int, int]) -> None:
    for grant_id, amount in moves.items():
        if amount:
            grant = grants_by_id[grant_id]
            prepared.run(conn, _SET_REMAINING, {"grant_id": grant_id, "to": grant.remaining + amount})
            allocate_to(conn, entry_id, grant_id, amount)


def give_back(conn: Connection, entry: Entry, taken: Sequence[tuple[int, int]], own: Grant | None) -> None:
    """Allocate a reversal (credits given back): debts first, then the grants in ``taken`` ((grant id, credits it
    lost), latest first) up to what each lost unless it has expired since, then ``own`` (or a new paid grant)."""
    left = entry.amount
    grants_by_id = {s.id: s for s in live(conn, entry.user_id)}
    moves: dict[int, int] = {}
    for debt in sorted((s for s in grants_by_id.values() if s.remaining < 0), key=lambda s: s.id):
        back = min(-debt.remaining, left)
        moves[debt.id] = back
        left -= back
    for grant_id, lost in taken:
        if not left:
            break
        grant = grants_by_id.get(grant_id) or _by_id(conn, grant_id)
        grants_by_id[grant_id] = grant
        room = lost - moves.get(grant_id, 0)
        if grant.gone(entry.created_at) or room <= 0:
            continue
        back = min(room, left)
        moves[grant_id] = moves.get(grant_id, 0) + back
        left -= back
    if left:
        target = own if own is not None and not own.gone(entry.created_at) else None
        if target is None:
            target = _new(conn, entry, PAID, "reversal", entry.description or "Credits given back", 0)
        target = grants_by_id.get(target.id) or _by_id(conn, target.id)
        grants_by_id[target.id] = target
        moves[target.id] = moves.get(target.id, 0) + left
    _apply(conn, entry.id, grants_by_id, moves)


def _new(conn: Connection, entry: Entry, kind: Kind, source: str, description: str, opening: int) -> Grant:
    values: dict[str, Any] = {
        "user_id": entry.user_id, "kind": kind, "source": source, "reference": f"{entry.type}:{entry.id}",
        "description": description, "amount": opening, "opening": opening, "remaining": opening,
        "created_at": entry.created_at, "expires_at": None, "expired_at": None, "entry_id": entry.id}
    grant_id = conn.execute(insert(grants).values(values).returning(g.id)).scalar_one()
    return Grant.from_row({"id": grant_id, **values})


def _by_id(conn: Connection, grant_id: int) -> Grant:
    return Grant.from_row(conn.execute(select(grants).where(g.id == grant_id)).mappings().one())


def of_purchase(conn: Connection, user_id: int, session_id: str) -> Grant | None:
    row = conn.execute(select(grants).where(g.user_id == user_id, g.source == "purchase",
                                            g.reference == session_id)).mappings().first()
    return Grant.from_row(row) if row else None


def taken_by(conn: Connection, entry_ids: Sequence[int]) -> list[tuple[int, int]]:
    """What these entries (a payment's clawbacks and reversals) took from each grant and have not given back,
    latest taken first: (grant id, credits)."""
    if not entry_ids:
        return []
    a = grant_allocations.c
    rows = conn.execute(select(a.grant_id, func.sum(a.amount), func.max(a.entry_id))
                        .where(a.entry_id.in_(list(entry_ids))).group_by(a.grant_id)).all()
    return [(grant_id, -net) for grant_id, net, _ in sorted(rows, key=lambda r: -r[2]) if net < 0]


# --- warnings ----------------------------------------------------------------------------------------


def lead_words(lead: timedelta) -> str:
    days, seconds = lead.days, lead.seconds
    if days and not seconds:
        return "1 day" if days == 1 else f"{days} days"
    hours = int(lead.total_seconds() // 3600)
    return "1 hour" if hours == 1 else f"{hours} hours"


def expiry_words(expires_at: str) -> str:
    """An expiry instant said so that it cannot be misread, as words that follow "expire": ``at the end of
    2026-12-13 (24:00 UTC)`` for midnight UTC (what ``adjust --expires 2026-12-13`` sets), else ``at 2026-12-14
    15:30 UTC`` (seconds when it has them). The app says it in the user's own zone from the alert's ``expiresAt``."""
    moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00")).astimezone(UTC)
    if (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0):
        return f"at the end of {(moment - timedelta(days=1)).date().isoformat()} (24:00 UTC)"
    clock = moment.strftime("%H:%M:%S" if moment.second or moment.microsecond else "%H:%M")
    return f"at {moment.date().isoformat()} {clock} UTC"


def warn(conn: Connection, now: datetime, leads: Sequence[timedelta] = DEFAULT_WARNINGS) -> int:
    """Make a ``credits_expiring`` alert for each grant that expires within a lead time, once per grant and lead
    (the alert's dedupe key); a grant whose expiry is nearer than a shorter lead gets only the shortest that
    applies. Returns how many alerts it made."""
    if not leads:
        return 0
    moment = iso_utc(now)
    horizon = iso_utc(now + max(leads))
    made = 0
    rows = conn.execute(select(grants).where(g.expired_at.is_(None), g.remaining > 0, g.expires_at > moment,
                                             g.expires_at <= horizon)).mappings().all()
    for row in rows:
        grant = Grant.from_row(row)
        assert grant.expires_at is not None
        applying = [lead for lead in leads if grant.expires_at <= iso_utc(now + lead)]
        lead = min(applying)
        verb = "expires" if grant.remaining == 1 else "expire"
        made += alerts.create(
            conn, grant.user_id, "credits_expiring",
            f"{alerts.credits(grant.remaining)} ({grant.description}) {verb} {expiry_words(grant.expires_at)}",
            {"grantId": grant.id, "credits": grant.remaining, "kind": grant.kind, "expiresAt": grant.expires_at,
             "description": grant.description, "leadSeconds": int(lead.total_seconds()), "lead": lead_words(lead)},
            dedupe_key=f"credits_expiring:{grant.id}:{int(lead.total_seconds())}")
    return made


# --- check -------------------------------------------------------------------------------------------


def problems(conn: Connection, now: datetime) -> list[str]:
    """Every way the grants disagree with the ledger, as sentences (``creditdesk-backend check``, after a sweep):
    a user's grants not summing to their balance, a grant's remaining not its opening plus its allocations, an entry
    (after the user's migration) whose allocations do not sum to its amount, a grant past its expiry not written down,
    a debt beside credits, an expiry entry that is not its grant's, spared credits no open hold reserves."""
    found: list[str] = []
    moment = iso_utc(now)
    a, e = grant_allocations.c, ledger_entries.c
    by_grant = dict(conn.execute(select(a.grant_id, func.sum(a.amount)).group_by(a.grant_id)).all())
    by_entry = dict(conn.execute(select(a.entry_id, func.sum(a.amount)).group_by(a.entry_id)).all())
    sums: dict[int, int] = {}
    cutoff: dict[int, int] = {}
    made_by: dict[int, int] = {}
    signs: dict[int, set[bool]] = {}
    for row in conn.execute(select(grants).order_by(g.id)).mappings():
        grant = Grant.from_row(row)
        sums[grant.user_id] = sums.get(grant.user_id, 0) + grant.remaining
        if grant.kind not in KINDS or grant.source not in SOURCES:
            found.append(f"grant {grant.id}: unknown kind {grant.kind!r} or source {grant.source!r}")
        if grant.remaining != grant.opening + int(by_grant.get(grant.id, 0)):
            found.append(f"grant {grant.id}: remaining {grant.remaining} != opening {grant.opening} + allocations "
                         f"{int(by_grant.get(grant.id, 0))}")
        if grant.due(moment):
            found.append(f"grant {grant.id}: past its expiry at {grant.expires_at} but not expired")
        if grant.remaining:
            signs.setdefault(grant.user_id, set()).add(grant.remaining > 0)
        if grant.source == "migration":
            cutoff[grant.user_id] = max(cutoff.get(grant.user_id, 0), grant.entry_id or 0)
        elif grant.entry_id is not None:
            made_by[grant.entry_id] = made_by.get(grant.entry_id, 0) + grant.opening
    balances = dict(conn.execute(select(ledger_entries.c.user_id, func.sum(e.amount)).group_by(e.user_id)).all())
    for user_id in sorted(set(balances) | set(sums)):
        if int(balances.get(user_id, 0)) != sums.get(user_id, 0):
            found.append(f"user {user_id}: grants hold {sums.get(user_id, 0)} but the balance is "
                         f"{int(balances.get(user_id, 0))}")
    for user_id, seen in sorted(signs.items()):
        if len(seen) > 1:
            found.append(f"user {user_id}: a debt beside grants with credits")
    rows = conn.execute(select(e.id, e.user_id, e.amount, e.type, e.reference).order_by(e.id)
                        .execution_options(stream_results=True, yield_per=20_000))
    for entry_id, user_id, amount, entry_type, reference in rows:
        if entry_id <= cutoff.get(user_id, 0):
            continue
        allocated = int(by_entry.get(entry_id, 0)) + made_by.get(entry_id, 0)
        if allocated != amount:
            found.append(f"entry {entry_id}: allocations {allocated} != its amount {amount}")
        if entry_type == "expiry" and not reference.startswith(EXPIRY_PREFIX):
            found.append(f"entry {entry_id}: an expiry that names no grant")
    return found + _unreserved_spared(conn, moment)


def _unreserved_spared(conn: Connection, moment: str) -> list[str]:
    """Spared credits (expired grants' remaining) beyond what open holds reserve: for each instant X a grant of the
    user expired at, the spared credits of grants expired by X are at most what the open holds placed by X hold."""
    h = holds.c
    kept: dict[int, list[tuple[str, int]]] = {}
    for user_id, expired_at, remaining in conn.execute(
            select(g.user_id, g.expired_at, g.remaining).where(g.expired_at.is_not(None), g.remaining > 0)):
        kept.setdefault(user_id, []).append((expired_at, remaining))
    found: list[str] = []
    for user_id, spared in sorted(kept.items()):
        open_now = conn.execute(select(h.created_at, h.amount).where(
            h.user_id == user_id, h.status == "open", h.expires_at > moment)).all()
        for threshold in sorted({at for at, _ in spared}):
            over = sum(credits for at, credits in spared if at <= threshold) - sum(
                amount for created_at, amount in open_now if created_at <= threshold)
            if over > 0:
                found.append(f"user {user_id}: {over} spared credits of grants expired by {threshold} that no "
                             "open hold placed by then reserves")
                break
    return found
