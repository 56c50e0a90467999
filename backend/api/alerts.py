"""``/api/alerts``: the user's alerts, marking them read, and a test alert."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend import alerts
from backend.api.answers import AlertJson, AlertsAnswer, UnreadAnswer
from backend.api.deps import ServicesDep, UserDep
from backend.api.errors import BODY_ERRORS, INVALID_TEXT, QUERY_ERRORS, SIGNED_IN, documented
from backend.api.schemas import ReadAlertsBody

# Every route answers 400 invalid_text to NUL in its query (app.RefuseNul), whatever it takes.
router = APIRouter(prefix="/api/alerts", responses=documented(INVALID_TEXT))


@router.get("", response_model=AlertsAnswer, responses=documented(QUERY_ERRORS, SIGNED_IN))
def list_alerts(
    services: ServicesDep, user: UserDep,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> dict[str, object]:
    with services.db.read() as conn:
        found, next_cursor = alerts.page(conn, user.id, unread_only=unread, limit=limit, before=before)
        unread_count = alerts.unread_count(conn, user.id)
    return {"alerts": [a.as_json() for a in found], "nextCursor": str(next_cursor) if next_cursor else None,
            "unread": unread_count}


@router.post("/read", response_model=UnreadAnswer, responses=documented(BODY_ERRORS, SIGNED_IN))
def mark_read(body: ReadAlertsBody, services: ServicesDep, user: UserDep) -> dict[str, int]:
    with services.db.transaction() as conn:
        return {"unread": alerts.mark_read(conn, user.id, None if body.all else body.ids)}


@router.post("/test", status_code=201, response_model=AlertJson, responses=documented(SIGNED_IN))
def send_test(services: ServicesDep, user: UserDep) -> dict[str, object]:
    with services.db.transaction() as conn:
        return alerts.send_test(conn, user.id).as_json()
