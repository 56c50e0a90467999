"""Expiry of grants: one ``expiry`` ledger entry per grant at its expiry instant, exactly once, and reads that treat
a grant past its expiry as expired before any sweep has written it down (:mod:`backend.grants` says the rules:
credits open holds reserve at the instant are spared).

Every change of a user's credits first calls :func:`sweep_user` under the user's balance lock; :func:`sweep` does
it for every user (``serve``'s periodic work and ``creditdesk-backend check``); :func:`view` is what reads show.
The expiry entry's reference ``grant:<id>`` is unique per user, and the grant's ``expired_at`` is set by a
conditional UPDATE in the same transaction: of two sweepers (threads or replicas), the second waits for the
balance lock and finds the grant expired.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, update

from backend import grants, ledger, prepared
from backend.catalogue import SignupBonus
from backend.db import Database, iso_utc
from backend.grants import EXPIRY_PREFIX, Grant, burn_key
from backend.schema import grants as grants_table
from backend.schema import holds

log = logging.getLogger("creditdesk.grants")
g = grants_table.c
_EXPIRE = prepared.hot("a grant expired", update(grants_table).where(
    g.id == bindparam("grant_id"), g.expired_at.is_(None),
).values(remaining=bindparam("to"), expired_at=bindparam("at")))


def reserved_at(conn: Connection, user_id: int, at: str) -> int:
    """What the user's holds reserved at the instant ``at``, whatever became of them since."""
    h = holds.c
    return int(conn.execute(select(func.coalesce(func.sum(h.amount), 0)).where(
        h.user_id == user_id, h.created_at <= at, h.expires_at > at,
        or_(h.status == "open", h.closed_at > at))).scalar_one())


@dataclass(frozen=True)
class Expiry:
    grant: Grant  # as it was before
    expired: int  # credits that expire (0: all spared by holds)
    spared: int  # credits kept because holds reserved them


def plan(found: Sequence[Grant], now: str, reserved: Callable[[str], int]) -> tuple[list[Grant], list[Expiry]]:
    """The grants as they are at ``now`` once every grant past its expiry has expired, and the expiries that takes, in
    the order of their instants. Pure: ``reserved(at)`` says what holds reserved at an instant."""
    state = {grant.id: grant for grant in found}
    expiries: list[Expiry] = []
    for grant in sorted((grant for grant in found if grant.due(now)), key=lambda d: (d.expires_at, d.id)):
        at = grant.expires_at
        assert at is not None
        current = state[grant.id]
        ahead = sum(other.remaining for other in state.values()
                    if other.id != grant.id and other.remaining > 0 and burn_key(other) < burn_key(current))
        spared = min(max(current.remaining, 0), max(0, reserved(at) - ahead))
        expired = max(current.remaining, 0) - spared
        expiries.append(Expiry(current, expired, spared))
        state[grant.id] = replace(current, remaining=current.remaining - expired, expired_at=at)
    return list(state.values()), expiries


@dataclass(frozen=True)
class View:
    """A user's credits as every read shows them at one instant."""

    balance: int
    grants: list[Grant]  # with credits, burn order first
    expiring: int  # credits that have expired but are not written down yet (already left out of ``balance``)


def view(conn: Connection, user_id: int, now: datetime) -> View:
    moment = iso_utc(now)
    found = grants.live(conn, user_id)
    state, expiries = plan(found, moment, lambda at: reserved_at(conn, user_id, at))
    pending = sum(expiry.expired for expiry in expiries)
    return View(ledger.balance(conn, user_id) - pending, sorted((s for s in state if s.remaining), key=burn_key),
                pending)




def sweep_user(conn: Connection, user_id: int, now: datetime) -> list[Grant]:
    """Write down the expiry of the user's grants past their expiry, once each; returns the user's grants with
    credits after it. The caller holds the user's balance lock (:func:`backend.ledger.locked_balance`)."""
    moment = iso_utc(now)
    found = grants.live(conn, user_id)
    if not any(grant.due(moment) for grant in found):
        return found
    state, expiries = plan(found, moment, lambda at: reserved_at(conn, user_id, at))
    for expiry in expiries:
        grant, at = expiry.grant, expiry.grant.expires_at
        entry = None
        if expiry.expired:
            entry = ledger.post(conn, user_id=user_id, type="expiry", amount=-expiry.expired,
                                reference=f"{EXPIRY_PREFIX}{grant.id}", description=f"{grant.description} expired",
                                created_at=at, allocation=grants.ByCaller())
            if entry is None:  # written already: another sweep got here first (it cannot, under the lock)
                raise RuntimeError(f"grant {grant.id} expired twice")
            grants.allocate_to(conn, entry.id, grant.id, -expiry.expired)
        changed = prepared.run(conn, _EXPIRE, {"grant_id": grant.id, "to": grant.remaining - expiry.expired,
                                               "at": at}).rowcount
        if changed != 1:
            raise RuntimeError(f"grant {grant.id} expired twice")
    return [s for s in state if s.remaining]


def sweep(conn_for: Callable[[], Any], now: datetime, *, limit: int | None = 500) -> int:
    """Write down every grant past its expiry (the sweeper), one user per transaction, taking each user's balance
    lock first; returns how many grants it expired. ``conn_for()`` gives a write transaction's context manager."""
    done = 0
    moment = iso_utc(now)
    with conn_for() as conn:
        users = [row[0] for row in conn.execute(
            select(g.user_id).where(g.expired_at.is_(None), g.expires_at <= moment, g.remaining > 0)
            .distinct().limit(limit))]
    for user_id in users:
        with conn_for() as conn:
            ledger.locked_balance(conn, user_id)
            before = {s.id for s in grants.live(conn, user_id) if s.due(moment)}
            sweep_user(conn, user_id, now)
            done += len(before)
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
