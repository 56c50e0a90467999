"""What each pack is worth beside the others: its price per credit, what that saves against the smallest pack
of its currency, which pack gives the most credits for the money ("best value"), and whether checkout adds tax to
its price."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from desktop.core.models import Pack


@dataclass(frozen=True)
class PackValue:
    per_credit: Decimal  # in the currency's minor unit, as shown (the backend's pricePerCredit)
    saving: int | None  # whole percent less per credit than the smallest pack of its currency (rounded down)
    best: bool  # the lowest price per credit of its currency, and lower than the smallest pack's


def pack_values(packs: list[Pack]) -> dict[str, PackValue]:
    """By pack id. A saving is never overstated: 9.09 % is "9 %"; a pack that saves less than 1 % saves nothing
    worth saying (None), and so does the smallest pack itself."""
    values: dict[str, PackValue] = {}
    for currency in {pack.currency for pack in packs}:
        same = [pack for pack in packs if pack.currency == currency]
        # Compared exactly (amount / credits as a fraction), not on the rounded price per credit shown.
        exact = {pack.id: Fraction(pack.amount, pack.credits) for pack in same}
        smallest = min(same, key=lambda pack: (pack.credits, exact[pack.id]))
        cheapest = min(exact.values())
        for pack in same:
            saving = math.floor((1 - exact[pack.id] / exact[smallest.id]) * 100)
            values[pack.id] = PackValue(pack.per_credit, saving if saving >= 1 else None,
                                        exact[pack.id] == cheapest and cheapest < exact[smallest.id])
    return values


TAX_WORDS = {"exclusive": "+ tax", "inclusive": "incl. tax"}


def tax_words(pack: Pack) -> str:
    """What a pack's price says of tax: "+ tax" when checkout adds it on top, "incl. tax" when the price holds it,
    nothing when checkout adds none."""
    return TAX_WORDS.get(pack.tax or "", "")
