"""Numbers, money and dates as the user's locale writes them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from PySide6.QtCore import QDate, QDateTime, QLocale, QTime, QTimeZone

from resources import currencies


def money(amount: int, currency: str, locale: QLocale | None = None) -> str:
    """``2550, "usd"`` -> ``$25.50`` in an en_US locale, ``25,50 US$`` in de_DE; ``500, "jpy"`` -> ``¥500``;
    ``500, "isk"`` -> ``ISK 5``. The value and its decimals are Stripe's (:mod:`resources.currencies`), the
    writing the locale's."""
    return _currency_text(currencies.value(amount, currency), currency, currencies.digits(amount, currency), locale)


def unit_price(minor_units: Decimal, currency: str, locale: QLocale | None = None) -> str:
    """A price per credit (in minor units, as ``pricePerCredit``), with two more decimals than the currency's:
    ``Decimal("4.5455"), "usd"`` -> ``$0.0455``."""
    places = currencies.exponent(currency) + 2
    value = (minor_units.scaleb(-currencies.exponent(currency))).quantize(Decimal(1).scaleb(-places))
    return _currency_text(value, currency, places, locale)


def _currency_text(value: Decimal, currency: str, places: int, locale: QLocale | None) -> str:
    locale = locale or QLocale()
    code = currency.upper()
    symbol = locale.currencySymbol(QLocale.CurrencySymbolFormat.CurrencySymbol)
    if locale.currencySymbol(QLocale.CurrencySymbolFormat.CurrencyIsoCode) != code:
        symbol = _symbol_for(code) or code
    text = locale.toCurrencyString(float(value), symbol, places)
    if symbol.isalpha():  # a code beside the digits is spaced from them, as CLDR's currency spacing says: ISK 5
        text = re.sub(rf"(?<={symbol})(?=[^\s\xa0])|(?<=[^\s\xa0])(?={symbol})", "\xa0", text)
    return text


@lru_cache(maxsize=32)
def _symbol_for(code: str) -> str | None:
    for country_locale in QLocale.matchingLocales(QLocale.Language.AnyLanguage, QLocale.Script.AnyScript,
                                                  QLocale.Country.AnyCountry):
        if country_locale.currencySymbol(QLocale.CurrencySymbolFormat.CurrencyIsoCode) == code:
            symbol = country_locale.currencySymbol(QLocale.CurrencySymbolFormat.CurrencySymbol)
            # A sign such as $, € or ¥ reads the same in any language; a word ("kr." for ISK, SEK and NOK alike)
            # does not, and the ISO code says more.
            if symbol and symbol != code and len(symbol) <= 3 and not any(char.isalpha() for char in symbol):
                return symbol
    return None


def number(value: int, locale: QLocale | None = None) -> str:
    return (locale or QLocale()).toString(value)


def signed(value: int, locale: QLocale | None = None) -> str:
    locale = locale or QLocale()
    text = number(abs(value), locale)
    return f"{locale.positiveSign()}{text}" if value > 0 else f"{locale.negativeSign()}{text}" if value < 0 else text


def _four_digit_year(date_format: str) -> str:
    """A locale's short date format with the year written in full (``M/d/yy`` -> ``M/d/yyyy``)."""
    return re.sub(r"(?<!y)y{1,2}(?!y)", "yyyy", date_format)


def _moment(moment: datetime, zone: QTimeZone | None) -> QDateTime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return QDateTime.fromMSecsSinceEpoch(int(moment.timestamp() * 1000), zone or QTimeZone.systemTimeZone())


def _date_and_time(locale: QLocale) -> str:
    """The one way the app writes a date and time: the locale's short date with all four digits of the year,
    and its short time."""
    return f"{_four_digit_year(locale.dateFormat(QLocale.FormatType.ShortFormat))} " \
           f"{locale.timeFormat(QLocale.FormatType.ShortFormat)}"


def when(moment: datetime, locale: QLocale | None = None, zone: QTimeZone | None = None) -> str:
    """A moment in the user's time zone, as their locale writes a short date (with all four digits of the year)
    and time, followed by the zone: ``11/26/2026 9:05 AM UTC``, ``26.11.2026 10:05 MEZ``. History, purchases,
    alerts and spend controls all write dates so (:func:`local_datetime` for a zone not this computer's)."""
    locale = locale or QLocale()
    local = _moment(moment, zone)
    abbreviation = local.timeZoneAbbreviation()
    text = locale.toString(local, _date_and_time(locale))
    return f"{text} {abbreviation}" if abbreviation else text


def clock(moment: datetime, locale: QLocale | None = None, zone: QTimeZone | None = None) -> str:
    """The time of day of a moment, in the user's time zone and locale: ``9:05 AM``."""
    locale = locale or QLocale()
    return locale.toString(_moment(moment, zone).time(), locale.timeFormat(QLocale.FormatType.ShortFormat))


def timestamp(iso: str, locale: QLocale | None = None, zone: QTimeZone | None = None) -> str:
    """An ISO 8601 UTC time from the API, as :func:`when` writes it."""
    try:
        parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return when(parsed, locale, zone)


def local_datetime(moment: datetime, locale: QLocale | None = None) -> str:
    """An aware datetime, already in the zone to show it in (the user's spend controls' zone, which need not be
    this computer's), as :func:`when` writes a moment: its own wall clock and zone, ``11/27/2026 12:00 AM CET``."""
    locale = locale or QLocale()
    wall = QDateTime(QDate(moment.year, moment.month, moment.day), QTime(moment.hour, moment.minute))
    return f"{locale.toString(wall, _date_and_time(locale))} {moment.tzname() or ''}".strip()


def short_date(day: date, locale: QLocale | None = None, *, with_year: bool = False) -> str:
    """``27 Nov`` (``27 Nov 2026``) in the locale's words."""
    return (locale or QLocale()).toString(QDate(day.year, day.month, day.day), "d MMM yyyy" if with_year else "d MMM")


def month_name(day: date, locale: QLocale | None = None) -> str:
    """``Nov`` (``Jan 2027`` in January, where a year begins)."""
    locale = locale or QLocale()
    return locale.toString(QDate(day.year, day.month, 1), "MMM yyyy" if day.month == 1 else "MMM")


def _instant(moment: datetime | str) -> datetime | None:
    if isinstance(moment, datetime):
        return moment
    try:
        return datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return None


def day_ended(moment: datetime | str, zone: QTimeZone | None = None) -> date | None:
    """The day whose end ``moment`` is, in the user's time zone: an instant at local midnight (00:00:00.000) ends the
    day before it (``adjust --expires 2026-12-13`` expires at 24:00 UTC, which in London is the end of 13 Dec);
    None for any other instant."""
    instant = _instant(moment)
    if instant is None:
        return None
    local = _moment(instant, zone)
    if local.time() != QTime(0, 0):
        return None
    day = local.date()
    return date(day.year(), day.month(), day.day()) - timedelta(days=1)


def expiry(moment: datetime | str, locale: QLocale | None = None, zone: QTimeZone | None = None, *,
           today: date | None = None) -> str:
    """When credits expire, as words that follow "expire": ``at the end of 13 Dec`` for an instant at the user's
    local midnight (the end of the day before, as the user reads it), else the instant as :func:`when` writes it,
    ``at 12/13/2026 4:00 PM PST``. The year is named when it is not this year (``today`` in the user's zone)."""
    instant = _instant(moment)
    if instant is None:
        return f"at {moment}"
    ended = day_ended(instant, zone)
    if ended is None:
        return f"at {when(instant, locale, zone)}"
    if today is None:
        now = QDateTime.currentDateTime().toTimeZone(zone or QTimeZone.systemTimeZone()).date()
        today = date(now.year(), now.month(), now.day())
    return f"at the end of {short_date(ended, locale, with_year=ended.year != today.year)}"


def alert_message(kind: str, message: str, data: Mapping[str, Any], locale: QLocale | None = None,
                  zone: QTimeZone | None = None, *, today: date | None = None) -> str:
    """An alert's message as the user reads it: a ``credits_expiring`` alert that carries its instant and figures
    says the expiry in the user's zone and locale (:func:`expiry`), a ``topup_undone`` one the refund as money
    ("$5.00", where the backend writes "5.00 USD"); every other alert (and one without the figures) as the backend
    wrote it."""
    if kind == "credits_expiring":
        at, credits, description = data.get("expiresAt"), data.get("credits"), data.get("description")
        if isinstance(at, str) and isinstance(credits, int) and isinstance(description, str) \
                and _instant(at) is not None:
            noun = "credit" if abs(credits) == 1 else "credits"
            verb = "expires" if abs(credits) == 1 else "expire"
            return f"{number(credits, locale)} {noun} ({description}) {verb} {expiry(at, locale, zone, today=today)}"
    if kind == "topup_undone":
        refunded, currency, credits = data.get("refunded"), data.get("currency"), data.get("credits")
        if isinstance(refunded, int) and isinstance(currency, str) and isinstance(credits, int) \
                and not isinstance(credits, bool):
            noun = "credit" if abs(credits) == 1 else "credits"
            return (f"Auto top-up undone: {number(credits, locale)} {noun} taken back and "
                    f"{money(refunded, currency, locale)} refunded to your card.")
    return message
