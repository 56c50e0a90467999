"""The usage dashboard's sentences and figures (no Qt): the forecast and the totals, in words a user reads, and
the breakdown's shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

from desktop.core.spend_models import Forecast

MIN_ACTIVE_DAYS_HINT = 3  # the backend's rule: a forecast needs spending on three days


def days(n: int) -> str:
    return f"{n:,} day" if n == 1 else f"{n:,} days"


def forecast_text(forecast: Forecast) -> str:
    """``About 31 days left at your 7-day average (39 at your 30-day average).``, or why there is no figure."""
    if forecast.balance <= 0 and forecast.days_left == 0:
        return "No credits left: buy credits to go on spending."
    if forecast.days_left is None and forecast.days_left_30 is None:
        if forecast.active_days < MIN_ACTIVE_DAYS_HINT:
            return (f"Not enough data yet for a forecast: it needs spending on {MIN_ACTIVE_DAYS_HINT} days "
                    f"(so far {days(forecast.active_days)} in the last 30).")
        return "Nothing spent lately, so no forecast: your balance is not going down."
    if forecast.days_left is None:
        return (f"Nothing spent in the last 7 days; at your 30-day average of {forecast.daily_average_30:,.1f} "
                f"credits a day your balance lasts about {days(forecast.days_left_30 or 0)}.")
    thirty = "" if forecast.days_left_30 is None else f" ({forecast.days_left_30:,} at your 30-day average)"
    return (f"About {days(forecast.days_left)} left at your 7-day average of {forecast.daily_average_7:,.1f} "
            f"credits a day{thirty}.")


def totals_text(totals: Mapping[str, int]) -> str:
    parts = [f"Spent {totals.get('spent', 0):,}", f"bought {totals.get('purchased', 0):,}"]
    if totals.get("clawedBack"):
        parts.append(f"taken back {totals['clawedBack']:,}")
    if totals.get("adjusted"):
        parts.append(f"adjusted {totals['adjusted']:+,}")
    change = totals.get("closingBalance", 0) - totals.get("openingBalance", 0)
    return ", ".join(parts) + f" credits; balance {totals.get('openingBalance', 0):,} → " \
        f"{totals.get('closingBalance', 0):,} ({change:+,})."


def shares(amounts: Sequence[int]) -> list[int]:
    """Whole percents of the total that add up to exactly 100 (the largest remainder method): 5, 5 and 2 are
    42 %, 42 % and 16 %, where rounding each would say 42, 42 and 17 (101). All zeros: all 0."""
    total = sum(amounts)
    if total <= 0:
        return [0 for _ in amounts]
    exact = [Fraction(amount * 100, total) for amount in amounts]
    floors = [int(share) for share in exact]
    missing = 100 - sum(floors)
    by_remainder = sorted(range(len(amounts)), key=lambda n: (-(exact[n] - floors[n]), n))
    for n in by_remainder[:missing]:
        floors[n] += 1
    return floors
