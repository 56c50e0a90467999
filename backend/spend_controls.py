"""A user's spend controls: caps per day, week and month in their time zone, a "confirm above" threshold and
low-balance alert thresholds; every change kept with its old and new value.

Plain functions over a connection in the caller's transaction. What a cap counts is the user's spending only
(``spend`` entries): clawbacks of refunds and disputes, their reversals and adjustments never count. Lowering a
cap applies to the next spend and undoes nothing already spent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from backend import alerts, ledger, periods, prepared
from backend.db import insert_ignoring_duplicates, iso_utc, utcnow
from backend.periods import PERIODS, Period, Window
from backend.schema import ledger_entries, low_balance_thresholds, spend_control_changes, spend_controls

MAX_THRESHOLDS = 10
HISTORY_LIMIT = 100


@dataclass(frozen=True)
class Controls:
    time_zone: str = periods.DEFAULT_TIME_ZONE
    caps: Mapping[Period, int | None] = field(default_factory=lambda: dict.fromkeys(PERIODS))
    confirm_above: int | None = None
    low_balance_alerts: tuple[int, ...] = ()

    @property
    def zone(self) -> Any:
        return periods.zone(self.time_zone)

    def values(self) -> dict[str, object]:
        """Each control under the name the API and the history use."""
        return {
            "timeZone": self.time_zone, **{f"caps.{p}": self.caps.get(p) for p in PERIODS},
            "confirmAbove": self.confirm_above, "lowBalanceAlerts": list(self.low_balance_alerts),
        }

    def as_json(self) -> dict[str, object]:
        return {"timeZone": self.time_zone, "caps": {p: self.caps.get(p) for p in PERIODS},
                "confirmAbove": self.confirm_above, "lowBalanceAlerts": list(self.low_balance_alerts)}


# Read by every spend: built once (building a statement costs more than running it).
_CONTROLS = prepared.hot("spend controls",
                         select(spend_controls).where(spend_controls.c.user_id == bindparam("user_id")))
_THRESHOLDS_DOWN = prepared.hot("thresholds, highest first", select(low_balance_thresholds.c.threshold).where(
    low_balance_thresholds.c.user_id == bindparam("user_id")).order_by(low_balance_thresholds.c.threshold.desc()))


def load(conn: Connection, user_id: int) -> Controls:
    row = prepared.run(conn, _CONTROLS, {"user_id": user_id}).first()
    thresholds = tuple(r["threshold"] for r in prepared.run(conn, _THRESHOLDS_DOWN, {"user_id": user_id}).rows)
    return of_row(row, thresholds)


def of_row(row: Mapping[str, Any] | None, thresholds: tuple[int, ...] = ()) -> Controls:
    """The controls of a ``spend_controls`` row (None: the user has set none) and these low-balance thresholds."""
    if row is None:
        return Controls(low_balance_alerts=thresholds)
    return Controls(
        time_zone=row["time_zone"], caps={p: row[f"cap_{p}"] for p in PERIODS},
        confirm_above=row["confirm_above"], low_balance_alerts=thresholds,
    )


def update_controls(conn: Connection, user_id: int, changes: Mapping[str, Any]) -> Controls:
    """Apply ``changes`` (names as in :meth:`Controls.values`; validated by the caller) and record each value
    that differs. The user's balance row is locked first, so that no spend runs with half of the change and
    new thresholds are armed against the balance as it is."""
    balance = ledger.locked_balance(conn, user_id)
    before = load(conn, user_id)
    after = before
    if "timeZone" in changes:
        after = replace(after, time_zone=changes["timeZone"])
    caps = dict(after.caps)
    for period in PERIODS:
        if f"caps.{period}" in changes:
            caps[period] = changes[f"caps.{period}"]
    after = replace(after, caps=caps)
    if "confirmAbove" in changes:
        after = replace(after, confirm_above=changes["confirmAbove"])
    if "lowBalanceAlerts" in changes:
        after = replace(after, low_balance_alerts=tuple(sorted(set(changes["lowBalanceAlerts"] or ()), reverse=True)))
    old, new = before.values(), after.values()
    changed = [name for name in new if old[name] != new[name]]
    if not changed:
        return before
    now = utcnow()
    row = {"user_id": user_id, "time_zone": after.time_zone, "confirm_above": after.confirm_above, "updated_at": now,
           **{f"cap_{p}": after.caps.get(p) for p in PERIODS}}
    if not insert_ignoring_duplicates(conn, spend_controls, row):
        conn.execute(update(spend_controls).where(spend_controls.c.user_id == user_id).values(row))
    if "lowBalanceAlerts" in changed:
        alerts.set_thresholds(conn, user_id, after.low_balance_alerts, balance)
    conn.execute(insert(spend_control_changes), [
        {"user_id": user_id, "field": name, "old_value": json.dumps(old[name]), "new_value": json.dumps(new[name]),
         "changed_at": now}
        for name in changed
    ])
    return after


def history(conn: Connection, user_id: int, limit: int = HISTORY_LIMIT) -> list[dict[str, object]]:
    """The latest changes, newest first: ``{"changedAt", "field", "old", "new"}``."""
    c = spend_control_changes.c
    rows = conn.execute(
        select(c.field, c.old_value, c.new_value, c.changed_at).where(c.user_id == user_id)
        .order_by(c.id.desc()).limit(limit)
    ).all()
    return [{"changedAt": r.changed_at, "field": r.field, "old": _json(r.old_value), "new": _json(r.new_value)}
            for r in rows]


def _json(text: str | None) -> object:
    return None if text is None else json.loads(text)


def spent(conn: Connection, user_id: int, window: Window) -> int:
    """Credits the user spent in ``window`` (``spend`` entries only)."""
    e = ledger_entries.c
    total = conn.execute(
        select(func.coalesce(func.sum(e.amount), 0)).where(
            e.user_id == user_id, e.type == "spend",
            e.created_at >= iso_utc(window.start), e.created_at < iso_utc(window.end),
        )
    ).scalar_one()
    return -int(total)


@dataclass(frozen=True)
class PeriodUse:
    period: Period
    cap: int | None
    used: int
    window: Window

    def as_json(self) -> dict[str, object]:
        return {"cap": self.cap, "used": self.used, "startsAt": iso_utc(self.window.start),
                "resetsAt": iso_utc(self.window.end)}


def current_use(conn: Connection, user_id: int, controls: Controls, now: datetime) -> list[PeriodUse]:
    """What is spent so far in each period that holds ``now``, in the user's time zone."""
    found = []
    for period in PERIODS:
        window = periods.window(period, now, controls.zone)
        found.append(PeriodUse(period, controls.caps.get(period), spent(conn, user_id, window), window))
    return found
