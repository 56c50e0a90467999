"""``/api/support``: Help → Report a problem, the user's words and diagnostics report, kept for support."""

from __future__ import annotations

from fastapi import APIRouter

from backend import support_reports
from backend.api.answers import SupportReportAnswer
from backend.api.deps import ServicesDep, UserDep
from backend.api.errors import BODY_ERRORS, INVALID_TEXT, SIGNED_IN, documented
from backend.api.schemas import SupportReportBody
from backend.errors import RateLimited

# Every route answers 400 invalid_text to NUL in its query (app.RefuseNul), whatever it takes.
router = APIRouter(prefix="/api/support", responses=documented(INVALID_TEXT))


@router.post("/reports", status_code=201, response_model=SupportReportAnswer,
             responses=documented(BODY_ERRORS, SIGNED_IN, RateLimited))
def send_report(body: SupportReportBody, services: ServicesDep, user: UserDep) -> dict[str, str]:
    """Keep the report, redacted again (tokens, keys, emails masked); never logged. At most 5 an hour per user."""
    services.limiter.hit(services.settings.support_report_limit_per_user, "support-report", str(user.id))
    kept = support_reports.submit(services.db, user.id, body.message, body.report.model_dump())
    return {"reportId": kept.id, "receivedAt": kept.created_at}
