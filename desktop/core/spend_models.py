"""What the backend answers about spend controls, alerts and usage, as plain data (see docs/api.md).

Each ``from_json`` raises KeyError, TypeError or ValueError on an answer of the wrong shape; the client turns
those into its "the server sent an answer Creditdesk does not understand" error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

PERIODS = ("day", "week", "month")
PERIOD_WORDS = {"day": "daily", "week": "weekly", "month": "monthly"}  # "your daily cap"


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    return value


def _optional_int(value: Any) -> int | None:
    return None if value is None else _int(value)


# -- spend controls ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodUse:
    """What is spent so far in the current day, week or month, and when that period resets (UTC)."""

    cap: int | None
    used: int
    starts_at: str
    resets_at: str


@dataclass(frozen=True)
class ControlChange:
    changed_at: str
    field: str  # timeZone, caps.day, caps.week, caps.month, confirmAbove, lowBalanceAlerts
    old: Any
    new: Any


@dataclass(frozen=True)
class SpendControls:
    time_zone: str
    caps: Mapping[str, int | None]
    confirm_above: int | None
    low_balance_alerts: tuple[int, ...]
    history: tuple[ControlChange, ...] = ()
    periods: Mapping[str, PeriodUse] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> SpendControls:
        caps = body["caps"]
        periods = body.get("periods") or {}
        return cls(
            time_zone=str(body["timeZone"]),
            caps={p: _optional_int(caps.get(p)) for p in PERIODS},
            confirm_above=_optional_int(body.get("confirmAbove")),
            low_balance_alerts=tuple(_int(t) for t in body.get("lowBalanceAlerts") or ()),
            history=tuple(ControlChange(str(h["changedAt"]), str(h["field"]), h.get("old"), h.get("new"))
                          for h in body.get("history") or ()),
            periods={p: PeriodUse(_optional_int(u.get("cap")), _int(u["used"]), str(u["startsAt"]),
                                  str(u["resetsAt"]))
                     for p, u in periods.items() if p in PERIODS},
        )


@dataclass(frozen=True)
class ConfirmationRequest:
    """The backend asks to confirm a spend above the user's threshold (a 428 answer's details)."""

    token: str = field(repr=False)
    amount: int
    balance_after: int
    message: str

    @classmethod
    def from_details(cls, details: Mapping[str, Any], message: str) -> ConfirmationRequest:
        return cls(token=str(details["confirmationToken"]), amount=_int(details["amount"]),
                   balance_after=_int(details["balanceAfter"]), message=message)


# -- alerts -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    id: int
    kind: str  # low_balance, cap_80, cap_100, purchase_confirmed, purchase_failed, purchase_expired, clawback, ...
    created_at: str
    read_at: str | None
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def unread(self) -> bool:
        return self.read_at is None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Alert:
        data = body.get("data") or {}
        if not isinstance(data, Mapping):
            raise TypeError("data is not an object")
        return cls(id=_int(body["id"]), kind=str(body["kind"]), created_at=str(body["createdAt"]),
                   read_at=None if body.get("readAt") is None else str(body["readAt"]),
                   message=str(body["message"]), data=dict(data))


@dataclass(frozen=True)
class AlertPage:
    items: tuple[Alert, ...]
    next_cursor: str | None
    unread: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> AlertPage:
        items = tuple(Alert.from_json(a) for a in body["alerts"])
        cursor = body.get("nextCursor")
        unread = body.get("unread")
        return cls(items, None if cursor is None else str(cursor),
                   _int(unread) if unread is not None else sum(a.unread for a in items))


# -- usage ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageBucket:
    start: date
    spent: int
    purchased: int
    clawed_back: int
    adjusted: int = 0


@dataclass(frozen=True)
class Forecast:
    daily_average_7: float
    daily_average_30: float
    days_left: int | None
    days_left_30: int | None
    active_days: int
    balance: int


@dataclass(frozen=True)
class Usage:
    time_zone: str
    granularity: str
    first: date
    last: date
    buckets: tuple[UsageBucket, ...]
    totals: Mapping[str, int]
    by_description: tuple[tuple[str, int, bool], ...]  # (label, spent, whether it is the "everything else" row)
    forecast: Forecast

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Usage:
        f = body["forecast"]
        return cls(
            time_zone=str(body["timeZone"]), granularity=str(body["granularity"]),
            first=date.fromisoformat(body["from"]), last=date.fromisoformat(body["to"]),
            buckets=tuple(UsageBucket(date.fromisoformat(b["start"]), _int(b["spent"]), _int(b["purchased"]),
                                      _int(b["clawedBack"]), _int(b.get("adjusted", 0))) for b in body["buckets"]),
            totals={k: _int(v) for k, v in body["totals"].items()},
            by_description=tuple((str(r["description"]), _int(r["spent"]), bool(r.get("rest")))
                                 for r in body["byDescription"]),
            forecast=Forecast(float(f["dailyAverage7"]), float(f["dailyAverage30"]), _optional_int(f["daysLeft"]),
                              _optional_int(f.get("daysLeft30")), _int(f.get("activeDays", 0)),
                              _int(f.get("balance", 0))),
        )
