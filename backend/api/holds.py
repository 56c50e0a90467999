"""``/api/credits/holds``: reserve credits, then settle or void the hold (:mod:`backend.holds`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query

from backend import holds, ledger, spending
from backend.api.answers import HoldAnswer, HoldsAnswer, SettleAnswer, VoidAnswer
from backend.api.deps import ServicesDep, UserDep
from backend.api.errors import BODY_ERRORS, INVALID_TEXT, QUERY_ERRORS, SIGNED_IN, documented
from backend.api.schemas import HoldBody, SettleBody, VoidBody
from backend.errors import (
    AmountAboveHold,
    ConfirmationRequired,
    HoldClosed,
    IdempotencyConflict,
    InsufficientCredits,
    SpendCapReached,
    UnknownHold,
)

router = APIRouter(prefix="/api/credits/holds", responses=documented(INVALID_TEXT))

HoldId = Annotated[str, Path(min_length=1, max_length=64)]


@router.post("", status_code=201, response_model=HoldAnswer, responses=documented(
    BODY_ERRORS, SIGNED_IN, InsufficientCredits, IdempotencyConflict, SpendCapReached, ConfirmationRequired))
def place(body: HoldBody, services: ServicesDep, user: UserDep) -> HoldAnswer:
    request = spending.HoldRequest(
        amount=body.amount, idempotency_key=body.idempotencyKey, description=body.description or "",
        feature=body.feature, confirmation_token=body.confirmationToken,
        expires_in=None if body.expiresInSeconds is None else timedelta(seconds=body.expiresInSeconds),
    )
    hold = spending.hold(services.db, user.id, request)
    # A repeated key answers as the first time did, what was available then included.
    return HoldAnswer(id=hold.id, amount=hold.amount, status="open", expiresAt=hold.expires_at,
                      available=hold.available_after)


@router.get("", response_model=HoldsAnswer, responses=documented(QUERY_ERRORS, SIGNED_IN))
def listing(services: ServicesDep, user: UserDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
            ) -> dict[str, object]:
    now = datetime.now(UTC)
    with services.db.read() as conn:
        found = holds.recent(conn, user.id, limit=limit)
        reserved = holds.reserved(conn, user.id, now)
        balance = ledger.balance(conn, user.id)
    return {"holds": [hold.as_json(now) for hold in found], "reserved": reserved, "available": balance - reserved}


@router.post("/{hold_id}/settle", response_model=SettleAnswer, responses=documented(
    BODY_ERRORS, SIGNED_IN, UnknownHold, HoldClosed, AmountAboveHold, InsufficientCredits, IdempotencyConflict))
def settle(hold_id: HoldId, body: SettleBody, services: ServicesDep, user: UserDep) -> SettleAnswer:
    with services.db.transaction() as conn:
        done = holds.settle(conn, user.id, hold_id, body.amount, datetime.now(UTC))
    return SettleAnswer(transactionId=done.transaction_id, spent=done.spent, released=done.released,
                        balance=done.balance)


@router.post("/{hold_id}/void", response_model=VoidAnswer, responses=documented(
    BODY_ERRORS, SIGNED_IN, UnknownHold, HoldClosed))
def void(hold_id: HoldId, services: ServicesDep, user: UserDep, body: VoidBody | None = None) -> VoidAnswer:
    with services.db.transaction() as conn:
        done = holds.void(conn, user.id, hold_id, datetime.now(UTC))
    return VoidAnswer(released=done.released, balance=done.balance)
