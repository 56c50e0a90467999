"""``/api/credits/holds``: reserve credits, then settle or void the hold (:mod:`backend.holds`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from backend import autotopup, expiry, holds, spending
from backend.api.answers import HoldAnswer, HoldsAnswer, SettleAnswer, VoidAnswer
from backend.api.deps import ServicesDep, UserDep
from backend.api.errors import BODY_ERRORS, INVALID_TEXT, QUERY_ERRORS, SIGNED_IN, documented
from backend.api.schemas import HoldBody, SettleBody, VoidBody
from backend.db import Database
from backend.errors import (
    AmountAboveHold,
    ConfirmationRequired,
    DescriptionRequired,
    HoldClosed,
    IdempotencyConflict,
    InsufficientCredits,
    SpendCapReached,
    UnknownHold,
)
from backend.services import Services

router = APIRouter(prefix="/api/credits/holds", responses=documented(INVALID_TEXT))

HoldId = Annotated[str, Path(min_length=1, max_length=64)]


@router.post("", status_code=201, response_model=HoldAnswer, responses=documented(
    BODY_ERRORS, SIGNED_IN, InsufficientCredits, IdempotencyConflict, SpendCapReached, ConfirmationRequired,
    DescriptionRequired))
async def place(body: HoldBody, services: ServicesDep, user: UserDep) -> HoldAnswer:
    # async, the work on a worker thread, as a spend's (backend/api/credits.py): no thread hop of its own to check
    # the answer.
    request = spending.HoldRequest(
        amount=body.amount, idempotency_key=body.idempotencyKey, description=body.description or "",
        feature=body.feature, confirmation_token=body.confirmationToken,
        expires_in=None if body.expiresInSeconds is None else timedelta(seconds=body.expiresInSeconds),
    )
    spending.require_description(request, services.settings.require_description)
    hold = await run_in_threadpool(spending.hold, services.db, user.id, request)
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
        balance = expiry.view(conn, user.id, now).balance
    return {"holds": [hold.as_json(now) for hold in found], "reserved": reserved, "available": balance - reserved}


@router.post("/{hold_id}/settle", response_model=SettleAnswer, responses=documented(
    BODY_ERRORS, SIGNED_IN, UnknownHold, HoldClosed, AmountAboveHold, InsufficientCredits, IdempotencyConflict))
async def settle(hold_id: HoldId, body: SettleBody, services: ServicesDep, user: UserDep) -> SettleAnswer:
    done = await run_in_threadpool(_settle, services, user.id, hold_id, body.amount)
    return SettleAnswer(transactionId=done.transaction_id, spent=done.spent, released=done.released,
                        balance=done.balance)


@router.post("/{hold_id}/void", response_model=VoidAnswer, responses=documented(
    BODY_ERRORS, SIGNED_IN, UnknownHold, HoldClosed))
async def void(hold_id: HoldId, services: ServicesDep, user: UserDep, body: VoidBody | None = None) -> VoidAnswer:
    done = await run_in_threadpool(_void, services.db, user.id, hold_id)
    return VoidAnswer(released=done.released, balance=done.balance)


def _settle(services: Services, user_id: int, hold_id: str, amount: int) -> holds.SettledHold:
    with services.db.transaction() as conn:
        done = holds.settle(conn, user_id, hold_id, amount, datetime.now(UTC))
    # Committed: auto top-up looks for a crossing, as after a spend.
    autotopup.submit_after(services, user_id, crossing=done.transaction_id, before=done.before, after=done.balance)
    return done


def _void(db: Database, user_id: int, hold_id: str) -> holds.ReleasedHold:
    with db.transaction() as conn:
        return holds.void(conn, user_id, hold_id, datetime.now(UTC))
