"""Money, numbers and dates in the user's locale."""

from __future__ import annotations

from PySide6.QtCore import QLocale

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


def test_numbers() -> None:
    assert formatting.number(1234567, US) == "1,234,567"
    assert formatting.signed(-30, US) == "-30" and formatting.signed(550, US) == "+550"
    assert formatting.signed(0, US) == "0"
    assert formatting.number(1234567, DE) == "1.234.567"


def test_timestamps_are_local_and_short() -> None:
    text = formatting.timestamp("2026-11-26T09:05:31.640Z", US)
    assert "26" in text and "/" in text
    assert formatting.timestamp("not a date", US) == "not a date"
