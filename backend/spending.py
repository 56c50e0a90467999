"""Spending credits, and reserving them with holds, under the user's spend controls, all in one transaction each.

A spend (:func:`spend`) and a hold (:func:`hold`, :mod:`backend.holds`) go through the same checks, in this order,
once the user's balance row is locked (so that concurrent spends and holds of one user are checked one after the
other, on SQLite and on PostgreSQL alike):

1. a repeated idempotency key answers as the first time did (nothing is checked again, nothing spent or held);
2. the available balance must cover the amount: the balance less what open holds reserve
   (402 ``insufficient_credits``);
3. no cap may be exceeded: the amount plus what is already used in the period (403 ``spend_cap_reached``,
   naming the cap that resets last, since waiting for the others would not be enough). What is used is what
   was spent in the period plus what open holds reserve now: a hold counts against every cap as if it were
   spent now, until it is settled (then its spend entry counts, in the period of the settle), voided or
   expired (then it counts no more). So a cap holds whatever the holds settle for;
4. an amount above the "confirm above" threshold needs a confirmation token, good once for this amount and
   key (428 ``confirmation_required`` hands one out).

A refusal writes no ledger entry and no hold; what it does write (the cap's alert, the confirmation token)
commits. Settling a hold is not checked again: its credits and its place under the caps were reserved.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, bindparam, delete, insert, or_, select, update

from backend import alerts, entries, expiry, grants, holds, ledger, periods, prepared, spend_controls
from backend.db import Database, iso_utc
from backend.errors import ConfirmationRequired, DescriptionRequired, SpendCapReached
from backend.periods import PERIODS
from backend.schema import balances, spend_confirmations
from backend.schema import spend_controls as spend_controls_table

CONFIRMATION_TTL = timedelta(minutes=15)
# A spend's and a hold's first read: what open holds reserve (holds.reserved's statement) beside the user's spend
# controls (a row only if they set some), on the user's balance row.
_RESERVED_AND_CONTROLS = prepared.hot("credits reserved and spend controls", select(
    holds.RESERVED.scalar_subquery().label("reserved"), *spend_controls_table.c,
).select_from(balances.outerjoin(spend_controls_table, spend_controls_table.c.user_id == balances.c.user_id))
    .where(balances.c.user_id == bindparam("user_id")))
T = TypeVar("T")


@dataclass(frozen=True)
class SpendRequest:
    amount: int
    idempotency_key: str
    description: str = ""
    feature: str | None = None
    confirmation_token: str | None = None

    @property
    def fingerprint(self) -> str:
        """What makes two requests with one idempotency key the same spend. The confirmation token is not part
        of it (the confirmed retry is the same spend), and a request without a feature digests as before
        features existed, so that a key used before an upgrade still answers as it did."""
        parts: list[object] = [self.amount, self.description]
        if self.feature is not None:
            parts.append(self.feature)
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@dataclass(frozen=True)
class HoldRequest(SpendRequest):
    """A hold's request: a spend's, and how long the hold lives (``None``: :data:`backend.holds.DEFAULT_LIFETIME`)."""

    expires_in: timedelta | None = None

    @property
    def fingerprint(self) -> str:
        parts: list[object] = [self.amount, self.description, self.feature,
                               None if self.expires_in is None else self.expires_in.total_seconds()]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


# What a spend or a hold does once its controls are loaded: (conn, moment, reserved, check) -> (result, new).
Act = Callable[[Connection, datetime, int, Callable[[int], None]], tuple[T, bool]]


def require_description(request: SpendRequest, required: bool) -> None:
    """Where the host asks for one (CREDITDESK_REQUIRE_DESCRIPTION), a spend or hold says what it is for."""
    if required and not request.description.strip():
        raise DescriptionRequired()


def spend(db: Database, user_id: int, request: SpendRequest, *, now: datetime | None = None) -> entries.Entry:
    """Spend once per idempotency key, within the available balance and the user's controls; raises the refusal
    otherwise."""

    def act(conn: Connection, moment: datetime, reserved: int, check: Callable[[int], None]
            ) -> tuple[entries.Entry, bool]:
        found = expiry.sweep_user(conn, user_id, moment)  # the user's grants, any past expiry written down first
        return ledger.spend(  # in the burn order
            conn, user_id=user_id, amount=request.amount, idempotency_key=request.idempotency_key,
            description=request.description, fingerprint=request.fingerprint, feature=request.feature,
            check=check, created_at=iso_utc(moment), reserved=reserved, allocation=grants.Consume(found),
        )

    return _under_controls(db, user_id, request, now, act)


def hold(db: Database, user_id: int, request: HoldRequest, *, now: datetime | None = None) -> holds.Hold:
    """Reserve credits once per idempotency key, under the same rules as a spend; raises the refusal otherwise.
    Expired holds of the user are written down as expired on the way (:func:`backend.holds.sweep`)."""

    lifetime = holds.DEFAULT_LIFETIME if request.expires_in is None else request.expires_in

    def act(conn: Connection, moment: datetime, reserved: int, check: Callable[[int], None]
            ) -> tuple[holds.Hold, bool]:
        holds.sweep(conn, moment, user_id)
        expiry.sweep_user(conn, user_id, moment)  # an expired grant's credits are not there to hold
        return holds.place(
            conn, user_id=user_id, amount=request.amount, idempotency_key=request.idempotency_key,
            fingerprint=request.fingerprint, description=request.description, feature=request.feature,
            lifetime=lifetime, now=moment, reserved_now=reserved, check=check,
        )

    return _under_controls(db, user_id, request, now, act)


def _under_controls(db: Database, user_id: int, request: SpendRequest, now: datetime | None, act: Act[T]) -> T:
    """``act`` under the user's controls, in a write transaction that may commit together with other writers' (a host
    application spends for many users at once: on SQLite those queued for the write lock commit as one group, one
    sync of the disk for them all; Database.grouped). A refusal by the caps or the confirmation commits its own rows
    (the cap's alert, the confirmation token) and is raised once committed; any other refusal writes nothing."""

    def work(conn: Connection) -> tuple[T | None, SpendCapReached | ConfirmationRequired | None]:
        if conn.dialect.name != "sqlite":
            # The user's balance row locked first, so that ``moment`` is when this spend's turn came. SQLite's write
            # transaction (BEGIN IMMEDIATE) holds the whole database's write lock already: no statement needed.
            ledger.locked_balance(conn, user_id)
        moment = now or datetime.now(UTC)
        reserved, controls = _reserved_and_controls(conn, user_id, moment)
        counted: list[spend_controls.PeriodUse] = []

        def check(available: int) -> None:
            counted.extend(_check_caps(conn, user_id, request, controls, moment, reserved))
            _check_confirmation(conn, user_id, request, controls, available, moment)

        try:
            result, new = act(conn, moment, reserved, check)
        except (SpendCapReached, ConfirmationRequired) as exc:
            return None, exc  # nothing is in the ledger; the refusal's own rows commit
        if new:
            for use in counted:
                assert use.cap is not None
                alerts.on_cap_usage(conn, user_id, period=use.period, cap=use.cap,
                                    used=use.used + request.amount, window=use.window)
        return result, None

    result, refusal = db.grouped(work)
    if refusal is not None:
        raise refusal
    return result  # type: ignore[return-value]  # set whenever there is no refusal


def _reserved_and_controls(conn: Connection, user_id: int, moment: datetime) -> tuple[int, spend_controls.Controls]:
    """What open holds reserve at ``moment`` and the user's spend controls, in one statement (a user without a
    balance row yet: two). The controls come without the low-balance thresholds: the checks use the caps and
    "confirm above" only, and the balance's UPDATE finds the thresholds it crosses (backend/ledger.py). On
    PostgreSQL this runs once the balance row's lock is held, and so sees every hold committed before it."""
    row = prepared.run(conn, _RESERVED_AND_CONTROLS, {"user_id": user_id, "open": holds.OPEN,
                                                      "now": iso_utc(moment)}).first()
    if row is None:
        return holds.reserved(conn, user_id, moment), spend_controls.load(conn, user_id)
    return int(row["reserved"]), spend_controls.of_row(row if row["user_id"] is not None else None)


def _check_caps(conn: Connection, user_id: int, request: SpendRequest, controls: spend_controls.Controls,
                now: datetime, reserved: int) -> list[spend_controls.PeriodUse]:
    counted: list[spend_controls.PeriodUse] = []
    over: list[spend_controls.PeriodUse] = []
    for period in PERIODS:
        cap = controls.caps.get(period)
        if cap is None:
            continue
        window = periods.window(period, now, controls.zone)
        used = spend_controls.spent(conn, user_id, window) + reserved  # open holds count as spent now
        use = spend_controls.PeriodUse(period, cap, used, window)
        counted.append(use)
        if use.used + request.amount > cap:
            over.append(use)
    for use in over:
        assert use.cap is not None
        alerts.on_cap_refused(conn, user_id, period=use.period, cap=use.cap, used=use.used, window=use.window)
    if over:
        binding = max(over, key=lambda use: use.window.end)
        assert binding.cap is not None
        raise SpendCapReached(period=binding.period, cap=binding.cap, used=binding.used, amount=request.amount,
                              resets_at=iso_utc(binding.window.end))
    return counted


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_confirmation(conn: Connection, user_id: int, request: SpendRequest, controls: spend_controls.Controls,
                        balance: int, now: datetime) -> None:
    threshold = controls.confirm_above
    if threshold is None or request.amount <= threshold:
        return
    c = spend_confirmations.c
    now_text = iso_utc(now)
    if request.confirmation_token:
        used = conn.execute(
            update(spend_confirmations).where(
                c.token_hash == _digest(request.confirmation_token), c.user_id == user_id,
                c.idempotency_key == request.idempotency_key, c.amount == request.amount,
                c.used_at.is_(None), c.expires_at > now_text,
            ).values(used_at=now_text)
        )
        if used.rowcount == 1:
            return
    # Tokens that can no longer be used are of no interest to anyone.
    conn.execute(delete(spend_confirmations).where(
        c.user_id == user_id, or_(c.used_at.is_not(None), c.expires_at <= now_text)))
    token = "cfm_" + secrets.token_urlsafe(24)
    conn.execute(insert(spend_confirmations).values(
        token_hash=_digest(token), user_id=user_id, idempotency_key=request.idempotency_key, amount=request.amount,
        created_at=now_text, expires_at=iso_utc(now + CONFIRMATION_TTL), used_at=None,
    ))
    raise ConfirmationRequired(token=token, amount=request.amount, balance_after=balance - request.amount,
                               threshold=threshold, retried=bool(request.confirmation_token))
