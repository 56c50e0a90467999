"""Money as Stripe counts it (resources/currencies.py), which the backend's pages, its console and the app all
write from: each of Stripe's currency lists, its one special case, and the price per credit of the contract."""

from __future__ import annotations

from decimal import Decimal

import pytest

from resources import currencies

# Stripe's lists (https://docs.stripe.com/currencies): zero-decimal, three-decimal, and ISK's special case.
STRIPE_ZERO_DECIMAL = ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                       "xaf", "xof", "xpf"]
STRIPE_THREE_DECIMAL = ["bhd", "jod", "kwd", "omr", "tnd"]


@pytest.mark.parametrize("currency", STRIPE_ZERO_DECIMAL)
def test_a_zero_decimal_amount_is_whole_units(currency: str) -> None:
    assert currencies.exponent(currency) == currencies.exponent(currency.upper()) == 0
    assert currencies.plain(503, currency) == f"503 {currency.upper()}"


@pytest.mark.parametrize("currency", STRIPE_THREE_DECIMAL)
def test_a_three_decimal_amount_is_thousandths(currency: str) -> None:
    assert currencies.exponent(currency) == 3
    assert currencies.plain(5130, currency) == f"5.130 {currency.upper()}"
    assert currencies.refusal(5130, currency) is None
    assert "end in 0" in (currencies.refusal(5127, currency) or "")  # Stripe takes tens of the minor unit


@pytest.mark.parametrize(("amount", "currency", "value", "text"), [
    (2550, "usd", "25.50", "25.50 USD"),
    (1, "eur", "0.01", "0.01 EUR"),
    (-1999, "gbp", "-19.99", "-19.99 GBP"),
    (123456, "huf", "1234.56", "1234.56 HUF"),  # two decimals in charges (whole units only in payouts)
    (503, "jpy", "503", "503 JPY"),  # the diagnostics once said "5.03 JPY"
    (500, "isk", "5.00", "5 ISK"),  # two decimals in the API, whole krónur shown
    (550, "isk", "5.50", "5.50 ISK"),  # an old fractional amount is never rounded away
    (-1250, "kwd", "-1.250", "-1.250 KWD"),
])
def test_an_amount_is_its_exact_value_and_plain_text(amount: int, currency: str, value: str, text: str) -> None:
    assert currencies.value(amount, currency) == Decimal(value)
    assert currencies.plain(amount, currency) == text


def test_isk_prices_are_whole_krona() -> None:
    assert currencies.refusal(500, "isk") is None
    assert "multiple of 100" in (currencies.refusal(550, "isk") or "")
    assert currencies.refusal(7, "usd") is None and currencies.refusal(7, "jpy") is None


@pytest.mark.parametrize(("amount", "credits", "per_credit"), [
    (500, 100, "5"),
    (2500, 550, "4.5455"),  # 4.54545...: four places, half to even
    (5000, 1200, "4.1667"),
    (1000, 333, "3.003"),  # 3.003003...: the trailing zero of 3.0030 dropped
    (1, 3, "0.3333"),
    (2, 3, "0.6667"),
    (5, 80000, "0.0001"),  # 0.0000625
    (1, 40000, "0"),  # 0.000025: half to even gives 0.0000, written "0"
    (99_999_999, 7, "14285714.1429"),
])
def test_the_price_per_credit_is_a_decimal_string_in_minor_units(amount: int, credits: int, per_credit: str) -> None:
    assert currencies.per_unit(amount, credits) == per_credit


def test_a_price_is_shared_by_at_least_one_credit() -> None:
    with pytest.raises(ValueError):
        currencies.per_unit(500, 0)
