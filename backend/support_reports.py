"""Support reports: what a user sends from the app's Help → Report a problem, kept for support.

A report is the user's own words and the app's diagnostics report (JSON). The app redacts the diagnostics before
sending; both are redacted again here before they are stored (resources.redaction: tokens, keys, passwords, long
random runs, credentials in URLs; every email masked, the user's own included: ``j***@example.com``), so that
what the app missed, or what a user pasted into their words, never reaches the database. Neither the words nor
the report are logged: the log says only the report's id, its user and its size.

``creditdesk-backend user`` lists a user's recent reports by their first line; ``--json`` gives them whole.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from backend.db import Database, utcnow
from backend.schema import support_reports
from resources.redaction import redact

log = logging.getLogger("creditdesk.support_reports")

ID_PREFIX = "rep_"
# Bounds of what a user may send (the route's body refuses more, 422): the words, and the report as JSON.
MAX_MESSAGE_CHARS = 5_000
MAX_REPORT_BYTES = 256 * 1024
MAX_REPORT_DEPTH = 8


@dataclass(frozen=True)
class SupportReport:
    id: str
    user_id: int
    created_at: str
    message: str
    report: str  # the diagnostics report, as JSON text

    @property
    def first_line(self) -> str:
        """The first line of the user's words that says something, for a list."""
        return next((line.strip() for line in self.message.splitlines() if line.strip()), "")

    def as_json(self) -> dict[str, Any]:
        """Whole, as support reads it (``user EMAIL --json``): the words and the report, both redacted when kept."""
        return {"id": self.id, "createdAt": self.created_at, "firstLine": self.first_line, "message": self.message,
                "report": json.loads(self.report)}


def depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (a scalar is 0)."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict):
            todo.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, level + 1) for v in item)
        else:
            continue
        deepest = max(deepest, level + 1)
    return deepest


def _scrubbed(value: Any) -> Any:
    """``value`` with every string (object keys too) redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


def submit(db: Database, user_id: int, message: str, report: dict[str, Any]) -> SupportReport:
    """Keep a report of ``user_id``, redacted; returns it as stored."""
    kept = SupportReport(
        id=ID_PREFIX + secrets.token_hex(12), user_id=user_id, created_at=utcnow(),
        message=redact(message.strip()),
        report=json.dumps(_scrubbed(report), ensure_ascii=False, separators=(",", ":"), sort_keys=True),
    )
    with db.transaction() as conn:
        conn.execute(support_reports.insert().values(
            id=kept.id, user_id=kept.user_id, created_at=kept.created_at, message=kept.message, report=kept.report))
    # Never the words or the report: only what support needs to find them.
    log.info("support report id=%s user=%s message_chars=%d report_bytes=%d", kept.id, user_id, len(kept.message),
             len(kept.report.encode()))
    return kept


def recent(conn: Connection, user_id: int, limit: int = 20) -> list[SupportReport]:
    """The user's reports, newest first."""
    r = support_reports.c
    rows = conn.execute(sa.select(r.id, r.user_id, r.created_at, r.message, r.report)
                        .where(r.user_id == user_id).order_by(r.created_at.desc(), r.id.desc()).limit(limit))
    return [SupportReport(str(row.id), int(row.user_id), str(row.created_at), str(row.message), str(row.report))
            for row in rows]
