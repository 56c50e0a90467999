"""Money as Stripe counts it, for the backend and the app alike (neither imports the other; both import this).

Stripe takes and gives every amount as a whole number of the currency's minor unit
(https://docs.stripe.com/currencies): hundredths, except for its zero-decimal currencies (counted in whole
units) and its three-decimal ones (thousandths). Its one special case for what a customer sees is the
Icelandic króna: two decimals in the API, whole krónur only since 2023 (amounts are multiples of 100), so
``500`` is shown as ``5 ISK``. These lists, not a locale's own idea of a currency's decimals (CLDR gives
ISK, ALL or RSD none), decide what an amount is worth; a locale then only decides how it is written.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

# Stripe's zero-decimal currencies: an amount of 500 is 500 units.
ZERO_DECIMAL = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
})
# Stripe's three-decimal currencies: an amount of 5120 is 5.120.
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# Two decimals in the API, shown in whole units (Stripe's "special cases").
WHOLE_UNITS = frozenset({"isk"})

PER_UNIT_PLACES = 4  # a price per credit, in minor units: 1000 for 333 credits is 3.0030


def exponent(currency: str) -> int:
    """How many decimal places the API's integer amounts carry in ``currency`` (lower or upper case)."""
    code = currency.lower()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def value(amount: int, currency: str) -> Decimal:
    """An API amount as the exact number of the currency's units: ``2550, "usd"`` -> ``Decimal("25.50")``."""
    return Decimal(amount).scaleb(-exponent(currency))


def digits(amount: int, currency: str) -> int:
    """The decimal places to show ``amount`` with: the currency's own, none for whole-unit currencies (unless
    the amount, against Stripe's rule, has a fraction: money is never rounded away)."""
    places = exponent(currency)
    if currency.lower() in WHOLE_UNITS and amount % 10**places == 0:
        return 0
    return places


def plain(amount: int, currency: str) -> str:
    """Locale-free text for logs, reports and the terminal: ``25.50 USD``, ``500 JPY``, ``5 ISK``, ``-1.250 KWD``."""
    places = digits(amount, currency)
    return f"{value(amount, currency):.{places}f} {currency.upper()}"


def refusal(amount: int, currency: str) -> str | None:
    """Why Stripe would refuse ``amount`` as a price in ``currency``, or None: whole krónur only, and a last
    digit of 0 in the three-decimal currencies (Stripe's card partners take tens of their minor unit)."""
    code = currency.lower()
    if code in WHOLE_UNITS and amount % 100:
        return f"{code.upper()} prices are whole units: a multiple of 100 in the minor unit"
    if code in THREE_DECIMAL and amount % 10:
        return f"{code.upper()} prices end in 0 in the minor unit (Stripe takes tens of it)"
    return None


def per_unit(amount: int, units: int) -> str:
    """``amount`` minor units shared by ``units`` (a price per credit), as a decimal string in minor units to
    PER_UNIT_PLACES places, half to even, trailing zeros dropped: ``1000, 333`` -> ``"3.003"``; ``500, 100`` ->
    ``"5"``."""
    if units <= 0:
        raise ValueError("a price is shared by a positive number of units")
    share = (Decimal(amount) / Decimal(units)).quantize(Decimal(1).scaleb(-PER_UNIT_PLACES), ROUND_HALF_EVEN)
    text = f"{share:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
