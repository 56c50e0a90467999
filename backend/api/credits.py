"""``/api/credits``: balance, history, spending, spend controls, usage and the CSV export."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from backend import autotopup, expiry, grants, ledger, purchases, spend_controls, spending, usage
from backend.api.answers import (
    BalanceAnswer,
    ControlsAnswer,
    SpendAnswer,
    TransactionsAnswer,
    UsageAnswer,
)
from backend.api.deps import ServicesDep, TokenDep, UserDep, signed_in
from backend.api.errors import BODY_ERRORS, INVALID_TEXT, QUERY_ERRORS, SIGNED_IN, documented, documented_for_non_json
from backend.api.schemas import ControlsBody, SpendBody
from backend.entries import Entry
from backend.errors import (
    ConfirmationRequired,
    DescriptionRequired,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidDateRange,
    SpendCapReached,
)
from backend.services import Services

# Every route answers 400 invalid_text to NUL in its query (app.RefuseNul), whatever it takes.
router = APIRouter(prefix="/api/credits", responses=documented(INVALID_TEXT))


class CsvFile(StreamingResponse):
    """The CSV export's answer: its media type, for /openapi.json (the answer says ``charset=utf-8`` too)."""

    media_type = "text/csv"


@router.get("/balance", response_model=BalanceAnswer, responses=documented(SIGNED_IN))
def balance(services: ServicesDep, user: UserDep) -> dict[str, object]:
    # Grants past their expiry count as expired, whether or not the sweeper has written them down yet.
    with services.db.read() as conn:
        credits = expiry.view(conn, user.id, datetime.now(UTC))
    return {"balance": credits.balance, **grants.summary(credits.grants),
            "grants": [grant.as_json() for grant in credits.grants]}


@router.get("/transactions", response_model=TransactionsAnswer, responses=documented(QUERY_ERRORS, SIGNED_IN))
def transactions(
    services: ServicesDep, user: UserDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> dict[str, object]:
    with services.db.read() as conn:
        entries, next_cursor = ledger.history(conn, user.id, limit=limit, before=before)
        bought = purchases.orders_of_purchases(
            conn, user, (e.reference for e in entries if e.type == "purchase" and e.reference)
        )
    rows = []
    for e in entries:
        row: dict[str, object] = {"id": e.id, "type": e.type, "amount": e.amount, "balanceAfter": e.balance_after,
                                  "createdAt": e.created_at, "reference": e.reference, "description": e.description}
        order = bought.get(e.reference or "") if e.type == "purchase" else None
        if order is not None:  # what was paid for these credits, and the order behind them (for support)
            row["orderId"] = order.id
            row["payment"] = order.payment_json()
            if order.provider == "auto_topup":
                row["autoTopup"] = True
        rows.append(row)
    return {
        "transactions": rows,
        "nextCursor": str(next_cursor) if next_cursor is not None else None,
    }


@router.post("/spend", response_model=SpendAnswer, responses=documented(
    BODY_ERRORS, SIGNED_IN, InsufficientCredits, IdempotencyConflict, SpendCapReached, ConfirmationRequired,
    DescriptionRequired))
async def spend(body: SpendBody, services: ServicesDep, token: TokenDep) -> Response:
    # The host's hot path, in one hop to a worker thread: the token's user is looked up there, with the spend, rather
    # than by the signed-in dependency on a thread of its own (async, as a sync route's answer is checked on one more).
    # A missing or malformed token is 401 before the body is read; a body that is no spend is refused (400/422)
    # before a well-formed token is looked up. The answer is its declared model, built (so checked) here and
    # serialized once: returned as a model, FastAPI would dump it, check the dump against the model and encode it.
    request = spending.SpendRequest(
        amount=body.amount, idempotency_key=body.idempotencyKey, description=body.description or "",
        feature=body.feature, confirmation_token=body.confirmationToken,
    )
    entry = await run_in_threadpool(_spend, services, token, request)
    # A replay answers as the first time did: the balance right after this spend.
    return Response(SpendAnswer(transactionId=entry.id, balance=entry.balance_after).model_dump_json(),
                    media_type="application/json")


def _spend(services: Services, token: str, request: spending.SpendRequest) -> Entry:
    user_id = signed_in(services, token).id
    spending.require_description(request, services.settings.require_description)
    entry = spending.spend(services.db, user_id, request)
    # Committed: auto top-up looks for a crossing (one point read) and, if so, charges on its own thread.
    autotopup.submit_after(services, user_id, crossing=entry.id, before=entry.balance_after - entry.amount,
                           after=entry.balance_after)
    return entry


def _controls_answer(services: ServicesDep, user_id: int) -> dict[str, object]:
    with services.db.read() as conn:
        controls = spend_controls.load(conn, user_id)
        use = spend_controls.current_use(conn, user_id, controls, datetime.now(UTC))
        return {**controls.as_json(), "history": spend_controls.history(conn, user_id),
                "periods": {u.period: u.as_json() for u in use}}


@router.get("/controls", response_model=ControlsAnswer, responses=documented(SIGNED_IN))
def get_controls(services: ServicesDep, user: UserDep) -> dict[str, object]:
    return _controls_answer(services, user.id)


@router.put("/controls", response_model=ControlsAnswer, responses=documented(BODY_ERRORS, SIGNED_IN))
def put_controls(body: ControlsBody, services: ServicesDep, user: UserDep) -> dict[str, object]:
    with services.db.transaction() as conn:
        spend_controls.update_controls(conn, user.id, body.changes())
    return _controls_answer(services, user.id)


@router.get("/usage", response_model=UsageAnswer, responses=documented(QUERY_ERRORS, SIGNED_IN, InvalidDateRange))
def get_usage(
    services: ServicesDep, user: UserDep,
    granularity: Literal["day", "week", "month"] = "day",
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
) -> dict[str, object]:
    with services.db.read() as conn:
        controls = spend_controls.load(conn, user.id)
    return usage.dashboard(services.db, user.id, controls, granularity, from_, to)


@router.get("/transactions.csv", response_class=CsvFile, responses={
    200: {"description": "One row per ledger entry in the range, oldest first, after a header row",
          "headers": {"Content-Disposition": {"description": 'attachment; filename="creditdesk-transactions-'
                                                             '<from>-to-<to>.csv"', "schema": {"type": "string"}}}},
    **documented_for_non_json(QUERY_ERRORS, SIGNED_IN, InvalidDateRange)})
def transactions_csv(
    services: ServicesDep, user: UserDep,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
) -> CsvFile:
    with services.db.read() as conn:
        controls = spend_controls.load(conn, user.id)
    window = usage.csv_range(controls, from_, to)
    name = f"creditdesk-transactions-{window.first.isoformat()}-to-{window.last.isoformat()}.csv"
    return CsvFile(
        usage.csv_chunks(services.db, user.id, controls, window), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
