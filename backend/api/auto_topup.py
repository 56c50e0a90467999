"""``/api/credits/auto-topup`` (an extension of the contract): auto top-up's consent and limits, and Undo
(:mod:`backend.autotopup`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from backend import autotopup
from backend.api.answers import AutoTopupAnswer, UndoAnswer
from backend.api.deps import ServicesDep, UserDep
from backend.api.errors import BODY_ERRORS, INVALID_TEXT, QUERY_ERRORS, SIGNED_IN, documented
from backend.api.schemas import AutoTopupBody
from backend.errors import (
    InvalidAutoTopup,
    NothingToUndo,
    PaymentProviderRejected,
    PaymentProviderUnavailable,
    TopupNotUndoable,
    UndoExpired,
    UnknownTopup,
)
from backend.services import Services

router = APIRouter(prefix="/api/credits/auto-topup", responses=documented(INVALID_TEXT))

TopupId = Annotated[str, Path(min_length=1, max_length=64)]


def _status(services: Services, user_id: int) -> dict[str, object]:
    with services.db.read() as conn:
        return autotopup.status(conn, user_id, datetime.now(UTC))


@router.get("", response_model=AutoTopupAnswer, responses=documented(SIGNED_IN))
def get_auto_topup(services: ServicesDep, user: UserDep) -> dict[str, object]:
    return _status(services, user.id)


@router.put("", response_model=AutoTopupAnswer, responses=documented(BODY_ERRORS, SIGNED_IN, InvalidAutoTopup))
def put_auto_topup(body: AutoTopupBody, services: ServicesDep, user: UserDep) -> dict[str, object]:
    changes = autotopup.Changes(enabled=body.enabled, threshold=body.threshold, pack_id=body.packId,
                                monthly_limit=body.monthlyLimit, max_per_day=body.maxPerDay,
                                notify_only=body.notifyOnly)
    with services.db.transaction() as conn:
        autotopup.update(conn, user.id, changes, services.catalogue, datetime.now(UTC))
    return _status(services, user.id)


@router.post("/{topup_id}/undo", response_model=UndoAnswer, responses=documented(
    QUERY_ERRORS, SIGNED_IN, UnknownTopup, TopupNotUndoable, UndoExpired, NothingToUndo, PaymentProviderUnavailable,
    PaymentProviderRejected))
async def undo(topup_id: TopupId, services: ServicesDep, user: UserDep) -> UndoAnswer:
    # The refund is a provider call: on a worker thread, off the server's event loop.
    done = await run_in_threadpool(autotopup.undo, services.db, services.provider, user.id, topup_id)
    return UndoAnswer(topupId=done.topup.id, refunded=done.refunded, currency=done.topup.currency,
                      credits=done.credits, balance=done.balance)
