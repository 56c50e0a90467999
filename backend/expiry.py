"""Expiry of grants: one ``expiry`` ledger entry per grant at its expiry instant, exactly once, and reads that treat
a grant past its expiry as expired before any sweep has written it down (:mod:`backend.grants` says the rules:
credits open holds reserve at the instant are spared, until those holds close: then they expire at the close).

Every change of a user's credits first calls :func:`sweep_user` under the user's balance lock; :func:`sweep` does
it for every user (``serve``'s periodic work and ``creditdesk-backend check``); :func:`view` is what reads show.
The expiry entry's reference ``grant:<id>`` is unique per user, and the grant's ``expired_at`` is set by a
conditional UPDATE in the same transaction: of two sweepers (threads or replicas), the second waits for the
balance lock and finds the grant expired. Spared credits a closed hold gave up expire the same way: under the lock,
:func:`plan` replays the grants' expiries and the holds' closes since the earliest of them in the order of their
instants, from what is written down (what was written already is not found again: the spared credits left are
within what holds reserve at every instant passed), and the reference ``grant:<id>:<n>`` is unique.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from backend import grants, ledger, prepared
from backend.catalogue import SignupBonus
from backend.db import Database, iso_utc
from backend.grants import EXPIRY_PREFIX, Grant, burn_key
from backend.schema import grants as grants_table
from backend.schema import holds, ledger_entries

log = logging.getLogger("creditdesk.grants")
g = grants_table.c
_EXPIRE = prepared.hot("a grant expired", update(grants_table).where(
    g.id == bindparam("grant_id"), g.expired_at.is_(None),
).values(remaining=bindparam("to"), expired_at=bindparam("at")))


@dataclass(frozen=True)
class Span:
    """A hold as the plan sees it: it reserved ``amount`` from ``created_at`` until ``ends`` (the instant it was
    settled or voided, else its expiry; for an open hold that is still to come)."""

    amount: int
    created_at: str
    ends: str


def spans(conn: Connection, user_id: int, since: str) -> list[Span]:
    """The user's holds that reserved credits at or after ``since``, whatever became of them since."""
    h = holds.c
    rows = conn.execute(select(h.amount, h.created_at, h.closed_at, h.expires_at).where(
        h.user_id == user_id, h.expires_at >= since, or_(h.closed_at.is_(None), h.closed_at >= since)))
    return [Span(amount, created_at, closed_at or expires_at) for amount, created_at, closed_at, expires_at in rows]


def reserved_at(found: Sequence[Span], at: str) -> int:
    """What the holds reserved at the instant ``at``."""
    return sum(span.amount for span in found if span.created_at <= at < span.ends)


def spared(grant: Grant) -> bool:
    """An expired grant that still holds credits: credits an open hold kept from expiring."""
    return grant.expired_at is not None and grant.remaining > 0


@dataclass(frozen=True)
class Expiry:
    grant: Grant  # as it was before
    expired: int  # credits that expire (0: all spared by holds)
    spared: int  # credits kept because holds reserved them
    at: str  # the instant they expire: the grant's expiry, or the instant a hold that spared them closed
    first: bool = True  # the grant's own expiry (reference grant:<id>); False: spared credits no hold needs now


def since(found: Sequence[Grant], now: str) -> str | None:
    """The earliest instant the plan looks back to (None: nothing to plan, no hold is read)."""
    instants = [grant.expires_at for grant in found if grant.due(now) and grant.expires_at] + \
        [grant.expired_at for grant in found if spared(grant) and grant.expired_at]
    return min(instants) if instants else None


def plan(found: Sequence[Grant], now: str, held: Sequence[Span]) -> tuple[list[Grant], list[Expiry]]:
    """The grants as they are at ``now`` once every grant past its expiry has expired and every hold that closed
    since has given up the spared credits it no longer reserves, and the expiries that takes, in the order of their
    instants. Pure: ``held`` are the user's holds since :func:`since`.

    At a grant's expiry, what open holds reserve (less the credits ahead of it in the burn order) is spared. At each
    instant holds closed, spared credits expire until, for every instant X a grant expired at, the spared credits
    of grants expired by X are no more than what the holds still open that were placed by X reserve: a hold placed
    after an expiry did not keep those credits from expiring, so it cannot keep them later either."""
    state = {grant.id: grant for grant in found}
    start = since(found, now)
    if start is None:
        return list(found), []
    expiries: list[Expiry] = []
    events = sorted([(grant.expires_at or "", 0, grant.id) for grant in found if grant.due(now)]
                    + [(ends, 1, 0) for ends in {span.ends for span in held if start <= span.ends <= now}])
    for at, kind, grant_id in events:
        if kind == 1:
            expiries += _release(state, held, at)
            continue
        current = state[grant_id]
        ahead = sum(other.remaining for other in state.values()
                    if other.id != grant_id and other.remaining > 0 and burn_key(other) < burn_key(current))
        kept = min(max(current.remaining, 0), max(0, reserved_at(held, at) - ahead))
        expired = max(current.remaining, 0) - kept
        expiries.append(Expiry(current, expired, kept, at))
        state[grant_id] = replace(current, remaining=current.remaining - expired, expired_at=at)
    return list(state.values()), expiries


def _release(state: dict[int, Grant], held: Sequence[Span], at: str) -> list[Expiry]:
    """Holds closed at ``at``: the spared credits the holds still open (placed by their grant's expiry) no longer
    reserve expire now, in the burn order. Changes ``state``."""
    kept = sorted((grant for grant in state.values() if spared(grant) and (grant.expired_at or "") <= at),
                  key=burn_key)
    released: list[Expiry] = []
    for threshold in sorted({grant.expired_at or "" for grant in kept}):
        within = [grant.id for grant in kept if (grant.expired_at or "") <= threshold]
        over = sum(state[grant_id].remaining for grant_id in within) - sum(
            span.amount for span in held if span.created_at <= threshold and span.ends > at)
        for grant_id in within:
            if over <= 0:
                break
            current = state[grant_id]
            take = min(current.remaining, over)
            if take > 0:
                released.append(Expiry(current, take, current.remaining - take, at, first=False))
                state[grant_id] = replace(current, remaining=current.remaining - take)
                over -= take
    return released


@dataclass(frozen=True)
class View:
    """A user's credits as every read shows them at one instant."""

    balance: int
    grants: list[Grant]  # with credits, burn order first
    expiring: int  # credits that have expired but are not written down yet (already left out of ``balance``)


def _planned(conn: Connection, user_id: int, found: Sequence[Grant], moment: str) -> tuple[list[Grant], list[Expiry]]:
    start = since(found, moment)
    if start is None:
        return list(found), []
    return plan(found, moment, spans(conn, user_id, start))


def view(conn: Connection, user_id: int, now: datetime) -> View:
    moment = iso_utc(now)
    found = grants.live(conn, user_id)
    state, expiries = _planned(conn, user_id, found, moment)
    pending = sum(expiry.expired for expiry in expiries)
    return View(ledger.balance(conn, user_id) - pending, sorted((s for s in state if s.remaining), key=burn_key),
                pending)


def sweep_user(conn: Connection, user_id: int, now: datetime) -> list[Grant]:
    """Write down the expiry of the user's grants past their expiry, once each, and the expiry of spared credits no
    open hold reserves since a hold closed (:func:`plan`); returns the user's grants with credits after it. The
    caller holds the user's balance lock (:func:`backend.ledger.locked_balance`)."""
    moment = iso_utc(now)
    found = grants.live(conn, user_id)
    state, expiries = _planned(conn, user_id, found, moment)
    for expiry in expiries:
        _write(conn, user_id, expiry)
    return [s for s in state if s.remaining]


def _write(conn: Connection, user_id: int, expiry: Expiry) -> None:
    grant = expiry.grant
    if not expiry.first:
        # Spared credits given up by a hold: one more expiry entry of the grant, grant:<id>:<n> (its n-th); under
        # the balance lock n is what the ledger holds so far, and the unique reference stops a second writer.
        e = ledger_entries.c
        n = 1 + int(conn.execute(select(func.count()).where(
            e.user_id == user_id, e.type == "expiry",
            or_(e.reference == f"{EXPIRY_PREFIX}{grant.id}", e.reference.like(f"{EXPIRY_PREFIX}{grant.id}:%")),
        )).scalar_one())
        entry = ledger.post(conn, user_id=user_id, type="expiry", amount=-expiry.expired,
                            reference=f"{EXPIRY_PREFIX}{grant.id}:{n}", description=f"{grant.description} expired",
                            created_at=expiry.at, allocation=grants.ByCaller())
        if entry is None:
            raise RuntimeError(f"grant {grant.id}'s spared credits expired twice")
        grants.move(conn, grant, entry.id, -expiry.expired)
        return
    entry = None
    if expiry.expired:
        entry = ledger.post(conn, user_id=user_id, type="expiry", amount=-expiry.expired,
                            reference=f"{EXPIRY_PREFIX}{grant.id}", description=f"{grant.description} expired",
                            created_at=expiry.at, allocation=grants.ByCaller())
        if entry is None:  # written already: another sweep got here first (it cannot, under the lock)
            raise RuntimeError(f"grant {grant.id} expired twice")
        grants.allocate_to(conn, entry.id, grant.id, -expiry.expired)
    changed = prepared.run(conn, _EXPIRE, {"grant_id": grant.id, "to": grant.remaining - expiry.expired,
                                           "at": expiry.at}).rowcount
    if changed != 1:
        raise RuntimeError(f"grant {grant.id} expired twice")


def sweep(conn_for: Callable[[], Any], now: datetime, *, limit: int | None = 500) -> int:
    """Write down every grant past its expiry and the spared credits holds no longer reserve (the sweeper), one user
    per transaction, taking each user's balance lock first; returns how many expiries it wrote down. ``conn_for()``
    gives a write transaction's context manager."""
    done = 0
    moment = iso_utc(now)
    with conn_for() as conn:
        users = [row[0] for row in conn.execute(
            select(g.user_id).where(g.remaining > 0, or_(
                and_(g.expired_at.is_(None), g.expires_at <= moment), g.expired_at.is_not(None)))
            .distinct().limit(limit))]
    for user_id in users:
        with conn_for() as conn:
            ledger.locked_balance(conn, user_id)
            found = grants.live(conn, user_id)
            _, expiries = _planned(conn, user_id, found, moment)
            for expiry in expiries:
                _write(conn, user_id, expiry)
            done += len(expiries)
    return done




LEADER_LOCK = "creditdesk.expiry"


class ExpiryLoop:
    """``serve``'s periodic work on grants: every ``interval`` seconds, in a thread of its own, write down the grants
    past their expiry (:func:`sweep`) and make the ``credits_expiring`` alerts that are due (:func:`grants.warn`).
    Replicas on one PostgreSQL database take turns (a leader lock); a failed round is logged and the next retries."""

    def __init__(self, db: Database, interval: float, leads: Sequence[timedelta]) -> None:
        self._db = db
        self._interval = interval
        self._leads = tuple(leads)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grant-expiry", daemon=True)

    def start(self) -> ExpiryLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self, now: datetime) -> tuple[int, int]:
        """One round at ``now``: (grants expired, alerts made)."""
        expired = sweep(self._db.transaction, now)
        with self._db.transaction() as conn:
            warned = grants.warn(conn, now, self._leads)
        if expired or warned:
            log.info("grants outcome=swept expired=%d credits_expiring_alerts=%d", expired, warned)
        return expired, warned

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._db.leader_lock(LEADER_LOCK) as leading:
                    if leading:
                        self.run_once(datetime.now(UTC))
            except Exception:  # a bad day (database gone, a bug) must not end the loop; the next round retries
                log.exception("grants outcome=sweep_failed")
            self._stop.wait(self._interval)


def give_bonus(conn: Connection, user_id: int, bonus: SignupBonus, now: datetime | None = None) -> None:
    """The catalogue's sign-up bonus: a ``bonus`` entry (reference ``signup``, once per user) and its promotional
    grant, expiring ``expires_in_days`` after the account was made."""
    moment = now or datetime.now(UTC)
    expires_at = None if bonus.expires_in_days is None else iso_utc(moment + timedelta(days=bonus.expires_in_days))
    ledger.post(conn, user_id=user_id, type="bonus", amount=bonus.credits, reference="signup",
                description=bonus.description, created_at=iso_utc(moment),
                allocation=grants.NewGrant(kind=grants.PROMOTIONAL, source="signup", expires_at=expires_at))
