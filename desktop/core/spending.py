"""What a refused spend means for the user, and the words for spend controls (no Qt).

The backend refuses a spend with 402 (not enough credits), 403 ``spend_cap_reached`` (a cap) or 428
``confirmation_required`` (above the "confirm above" threshold). :func:`refusal_for` says which control
blocked it and the fix to offer: buy credits, raise the cap, or confirm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from desktop.core.models import ApiError
from desktop.core.spend_models import PERIOD_WORDS, ConfirmationRequest

THIS_PERIOD = {"day": "today", "week": "this week", "month": "this month"}
FIELD_NAMES = {"timeZone": "Time zone", "caps.day": "Daily cap", "caps.week": "Weekly cap",
               "caps.month": "Monthly cap", "confirmAbove": "Confirm above", "lowBalanceAlerts": "Low-balance alerts"}

TimeFormatter = Callable[[datetime], str]


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone ``name``; UTC when there is none or this machine does not know it."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(iso: str, zone_name: str | None) -> datetime:
    """An API time (ISO 8601 UTC) in the user's time zone."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(zone(zone_name))


def default_time_format(moment: datetime) -> str:
    return moment.strftime("%a %d %b %Y %H:%M %Z")


class Fix(Enum):
    """What the user can do about a refused spend."""

    BUY = "buy"  # buy credits
    RAISE_CAP = "raise_cap"  # change the spend controls
    CONFIRM = "confirm"  # say yes to the spend
    NONE = "none"


@dataclass(frozen=True)
class Refusal:
    control: str  # "balance", "cap" or "confirmation"
    title: str
    message: str
    fix: Fix
    confirmation: ConfirmationRequest | None = None


def refusal_for(error: BaseException, time_zone: str | None = None, format_time: TimeFormatter = default_time_format,
                *, confirm_above: int | None = None) -> Refusal | None:
    """Which control refused a spend and the fix to offer; ``None`` for an error that is no control's refusal.
    Reset times are written in ``time_zone`` (the user's, from their spend controls) with ``format_time``; a
    confirmation names the user's threshold, ``confirm_above``, when it is known."""
    if not isinstance(error, ApiError):
        return None
    details: dict[str, Any] = dict(error.details or {})
    if error.code == "insufficient_credits":
        return Refusal("balance", "Not enough credits", f"{error.message} Buy credits to go on.", Fix.BUY)
    if error.code == "spend_cap_reached":
        period = str(details.get("period", ""))
        word = PERIOD_WORDS.get(period, period)
        when = ""
        if isinstance(details.get("resetsAt"), str):
            when = f" It resets on {format_time(local_time(details['resetsAt'], time_zone))}."
        cap, used = details.get("cap"), details.get("used")
        left = f", {_number(max(cap - used, 0))} left" if isinstance(cap, int) and isinstance(used, int) else ""
        message = (f"This would go over your {word} cap: {_number(used)} of {_number(cap)} credits are already "
                   f"spent {THIS_PERIOD.get(period, 'in this period')}{left}.{when} Raise the cap or wait until then.")
        reached = isinstance(cap, int) and isinstance(used, int) and used >= cap
        title = f"{word.capitalize()} cap reached" if reached else f"Over your {word} cap"
        return Refusal("cap", title, message, Fix.RAISE_CAP)
    if error.code == "confirmation_required":
        try:
            request = ConfirmationRequest.from_details(details, error.message)
        except (KeyError, TypeError, ValueError):
            return Refusal("confirmation", "Confirmation needed", error.message, Fix.NONE)
        threshold = f"{confirm_above:,} credits" if confirm_above is not None else "your threshold"
        return Refusal("confirmation", "Confirm this spend",
                       f"Spend {request.amount:,} credits? Your balance will then be {request.balance_after:,} "
                       f"credits. You asked to confirm spends above {threshold}.", Fix.CONFIRM, request)
    return None


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def describe_value(field: str, value: Any) -> str:
    """A control's value as the history shows it."""
    if value is None or value == []:
        return "none"
    if field == "lowBalanceAlerts" and isinstance(value, list):
        return ", ".join(f"{v:,}" for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def time_zone_names() -> list[str]:
    """The IANA time zones this machine knows, sorted (reads the time zone database: call it off the GUI
    thread)."""
    from zoneinfo import available_timezones

    return sorted(available_timezones() - {"localtime", "posixrules", "Factory"})


def parse_thresholds(text: str, limit: int = 10) -> list[int]:
    """``"500, 100"`` -> ``[500, 100]`` (highest first, no repeats); ValueError with a sentence otherwise."""
    found: set[int] = set()
    for part in text.replace(";", ",").split(","):
        part = part.strip().replace("\u202f", "").replace("\u00a0", "").replace("_", "")
        if not part:
            continue
        if not part.isdigit():
            raise ValueError(f"{part!r} is not a whole number of credits.")
        if len(part) > 1 and part.startswith("0"):  # "1,000" split at its comma
            raise ValueError("Separate the levels with commas and write them without thousands separators, "
                             "like 1000, 250.")
        found.add(int(part))
    if len(found) > limit:
        raise ValueError(f"At most {limit} alert levels, please.")
    return sorted(found, reverse=True)
