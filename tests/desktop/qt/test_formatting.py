"""Money, numbers and dates in the user's locale."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from PySide6.QtCore import QLocale, QTimeZone

from desktop.qt import formatting

US = QLocale(QLocale.Language.English, QLocale.Country.UnitedStates)
DE = QLocale(QLocale.Language.German, QLocale.Country.Germany)
JP = QLocale(QLocale.Language.Japanese, QLocale.Country.Japan)


def test_money() -> None:
    assert formatting.money(2500, "usd", US) == "$25.00"
    assert formatting.money(2500, "eur", DE) == "25,00\xa0€"
    assert formatting.money(2500, "usd", DE) == "25,00\xa0$"
    assert formatting.money(500, "jpy", JP) == "￥500"
    assert formatting.money(123456, "usd", US) == "$1,234.56"


def test_money_is_stripes_value_in_the_locales_words() -> None:
    """Stripe's minor units decide the value (ISK counts hundredths, shown whole; KWD thousandths), whatever the
    locale's own idea of the currency's decimals."""
    assert formatting.money(500, "isk", US) == "ISK\xa05"
    assert formatting.money(550, "isk", US) == "ISK\xa05.50"  # a fractional old amount is never rounded away
    assert formatting.money(5130, "kwd", DE) == "5,130\xa0KWD"
    assert formatting.money(503, "jpy", US) == "¥503"


def test_a_price_per_credit_has_two_decimals_more_than_its_currency() -> None:
    assert formatting.unit_price(Decimal("4.5455"), "usd", US) == "$0.0455"
    assert formatting.unit_price(Decimal("4.5455"), "eur", DE) == "0,0455\xa0€"
    assert formatting.unit_price(Decimal("71.8571"), "jpy", US) == "¥71.86"
    assert formatting.unit_price(Decimal("5"), "usd", US) == "$0.0500"


def test_numbers() -> None:
    assert formatting.number(1234567, US) == "1,234,567"
    assert formatting.signed(-30, US) == "-30" and formatting.signed(550, US) == "+550"
    assert formatting.signed(0, US) == "0"
    assert formatting.number(1234567, DE) == "1.234.567"


BERLIN = QTimeZone(b"Europe/Berlin")
NEW_YORK = QTimeZone(b"America/New_York")


def test_timestamps_have_four_digit_years_in_the_locale_and_time_zone() -> None:
    at = "2026-11-26T09:05:31.640Z"
    assert formatting.timestamp(at, US, NEW_YORK) == "11/26/2026 4:05\u202fAM EST"
    assert formatting.timestamp(at, DE, BERLIN) == "26.11.2026 10:05 CET"
    assert formatting.timestamp("2026-07-01T12:00:00Z", DE, BERLIN) == "01.07.2026 14:00 CEST"
    assert formatting.timestamp("2026-11-26T23:30:00Z", US, BERLIN).startswith("11/27/2026")  # the next day there
    assert formatting.timestamp("not a date", US) == "not a date"


def test_dates_in_the_spend_controls_zone_are_written_as_the_history_writes_them() -> None:
    """One style for history, purchases, alerts, spend controls and refusals: only the zone differs."""
    midnight_in_berlin = datetime(2026, 11, 27, 0, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert formatting.local_datetime(midnight_in_berlin, US) == "11/27/2026 12:00\u202fAM CET"
    assert formatting.local_datetime(midnight_in_berlin, US) == formatting.timestamp("2026-11-26T23:00:00Z", US, BERLIN)
    assert formatting.local_datetime(midnight_in_berlin, DE) == formatting.timestamp("2026-11-26T23:00:00Z", DE, BERLIN)


def test_the_year_is_written_in_full_in_every_locale() -> None:
    for locale in (US, DE, JP, QLocale(QLocale.Language.French, QLocale.Country.France),
                   QLocale(QLocale.Language.English, QLocale.Country.UnitedKingdom)):
        assert "2026" in formatting.timestamp("2026-01-02T03:04:05Z", locale, BERLIN), locale.name()


def test_clock() -> None:
    assert formatting.clock(datetime(2026, 11, 26, 9, 5, tzinfo=UTC), US, NEW_YORK) == "4:05\u202fAM"


def test_the_history_says_an_expiry_and_a_bonus_in_words() -> None:
    from desktop.core.models import Transaction
    from desktop.qt.history_model import display

    expired = Transaction(7, "expiry", -13, 31, "2026-12-05T12:00:00.000Z", "grant:4", "Welcome bonus expired")
    assert display(expired)[0] == "Expired" and display(expired)[4] == "Welcome bonus expired"
    assert display(expired)[1].startswith(("-", "\u2212")) and "13" in display(expired)[1]
    bonus = Transaction(1, "bonus", 50, 50, "2026-11-21T12:00:00.000Z", "signup", "Welcome bonus")
    assert display(bonus)[0] == "Bonus"


# --- when credits expire ----------------------------------------------------------------------------------------
# `adjust --expires 2026-12-13` makes credits expire at 24:00 UTC: in a zone where that instant is local midnight it
# is the end of the 13th (not "14 Dec"); elsewhere the instant is said with its time and zone.
LONDON, LOS_ANGELES, TOKYO = QTimeZone(b"Europe/London"), QTimeZone(b"America/Los_Angeles"), QTimeZone(b"Asia/Tokyo")
UK = QLocale(QLocale.Language.English, QLocale.Country.UnitedKingdom)
TODAY = date(2026, 12, 6)

EXPIRIES = [
    # (the instant, locale, zone, what follows "9 expire")
    ("2026-12-14T00:00:00.000Z", UK, LONDON, "at the end of 13 Dec"),
    ("2026-12-14T00:00:00.000Z", US, QTimeZone.utc(), "at the end of 13 Dec"),
    ("2026-12-14T00:00:00.000Z", DE, BERLIN, "at 14.12.2026 01:00 CET"),  # an hour into the 14th there
    ("2026-12-14T00:00:00.000Z", US, LOS_ANGELES, "at 12/13/2026 4:00\u202fPM PST"),  # the afternoon of the 13th
    ("2026-12-14T00:00:00.000Z", JP, TOKYO, "at 2026/12/14 9:00 JST"),
    ("2026-12-13T23:00:00.000Z", DE, BERLIN, "at the end of 13 Dez."),  # Berlin's own midnight, in its words
    ("2026-07-01T22:00:00.000Z", DE, BERLIN, "at the end of 1 Juli"),  # summer time: midnight is 22:00 UTC
    ("2026-12-14T08:00:00.000Z", US, LOS_ANGELES, "at the end of 13 Dec"),
    ("2026-12-14T00:00:01.000Z", UK, LONDON, "at 14/12/2026 00:00 GMT"),  # a second past midnight is not the end
    ("2027-01-01T00:00:00.000Z", UK, LONDON, "at the end of 31 Dec"),  # this year still
    ("2027-01-02T00:00:00.000Z", UK, LONDON, "at the end of 1 Jan 2027"),  # another year: named
]


@pytest.mark.parametrize(("at", "locale", "zone", "words"), EXPIRIES)
def test_an_expiry_reads_as_the_end_of_a_day_or_as_a_local_date_and_time(at: str, locale: QLocale, zone: QTimeZone,
                                                                         words: str) -> None:
    assert formatting.expiry(at, locale, zone, today=TODAY) == words


def test_the_grants_line_and_the_expiring_alert_say_it_so() -> None:
    from desktop.core.models import GrantSummary

    summary = GrantSummary(12, "2026-12-14T00:00:00.000Z", 9)
    assert summary.words(lambda iso: formatting.expiry(iso, UK, LONDON, today=TODAY)) == \
        "12 promotional · 9 expire at the end of 13 Dec"
    assert summary.words(lambda iso: formatting.expiry(iso, US, LOS_ANGELES, today=TODAY)) == \
        "12 promotional · 9 expire at 12/13/2026 4:00\u202fPM PST"
    data = {"grantId": 4, "credits": 29, "kind": "promotional", "expiresAt": "2026-12-14T00:00:00.000Z",
            "description": "Welcome bonus", "leadSeconds": 86400, "lead": "1 day"}
    backend = "29 credits (Welcome bonus) expire at the end of 2026-12-13 (24:00 UTC)"
    assert formatting.alert_message("credits_expiring", backend, data, UK, LONDON, today=TODAY) == \
        "29 credits (Welcome bonus) expire at the end of 13 Dec"
    assert formatting.alert_message("credits_expiring", backend, dict(data, credits=1), US, LOS_ANGELES,
                                    today=TODAY) == "1 credit (Welcome bonus) expires at 12/13/2026 4:00\u202fPM PST"
    # A backend before `description` (or any other alert): its own words.
    assert formatting.alert_message("credits_expiring", backend, {k: v for k, v in data.items() if k != "description"},
                                    UK, LONDON) == backend
    assert formatting.alert_message("low_balance", "Your balance is 4 credits.", data, UK, LONDON) == \
        "Your balance is 4 credits."


def test_an_undone_auto_top_up_says_its_refund_as_money() -> None:
    """The backend writes "5.00 USD" (it knows no locale); the app says the refund as its cards say prices."""
    backend = "Auto top-up undone: 333 credits taken back and 16.67 USD refunded to your card."
    data = {"topupId": "tu_1", "refunded": 1667, "currency": "usd", "credits": 333}
    assert formatting.alert_message("topup_undone", backend, data, US) == \
        "Auto top-up undone: 333 credits taken back and $16.67 refunded to your card."
    assert formatting.alert_message("topup_undone", backend, dict(data, credits=1, refunded=5, currency="eur"), UK) \
        == "Auto top-up undone: 1 credit taken back and €0.05 refunded to your card."
    assert formatting.alert_message("topup_undone", backend, {"topupId": "tu_1"}, US) == backend  # no figures
