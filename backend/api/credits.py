"""``/api/credits``: balance, history, spending."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

from fastapi import APIRouter, Query

from backend import ledger
from backend.api.deps import ServicesDep, UserDep
from backend.api.schemas import SpendBody

router = APIRouter(prefix="/api/credits")


@router.get("/balance")
def balance(services: ServicesDep, user: UserDep) -> dict[str, int]:
    with services.db.read() as conn:
        return {"balance": ledger.balance(conn, user.id)}


@router.get("/transactions")
def transactions(
    services: ServicesDep, user: UserDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> dict[str, object]:
    with services.db.read() as conn:
        entries, next_cursor = ledger.history(conn, user.id, limit=limit, before=before)
    return {
        "transactions": [
            {"id": e.id, "type": e.type, "amount": e.amount, "balanceAfter": e.balance_after,
             "createdAt": e.created_at, "reference": e.reference, "description": e.description}
            for e in entries
        ],
        "nextCursor": str(next_cursor) if next_cursor is not None else None,
    }


@router.post("/spend")
def spend(body: SpendBody, services: ServicesDep, user: UserDep) -> dict[str, int]:
    description = body.description or ""
    fingerprint = hashlib.sha256(json.dumps([body.amount, description]).encode()).hexdigest()
    with services.db.transaction() as conn:
        entry, _ = ledger.spend(
            conn, user_id=user.id, amount=body.amount, idempotency_key=body.idempotencyKey,
            description=description, fingerprint=fingerprint,
        )
    # A replay answers as the first time did: the balance right after this spend.
    return {"transactionId": entry.id, "balance": entry.balance_after}
