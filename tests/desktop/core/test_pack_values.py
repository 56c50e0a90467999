"""Each pack's worth beside the others: the saving against the smallest pack, never overstated, and the best value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from desktop.core.models import Pack
from desktop.core.pack_values import PackValue, pack_values


def pack(pack_id: str, credits: int, amount: int, currency: str = "usd", per_credit: str | None = None) -> Pack:
    return Pack(pack_id, pack_id.title(), credits, amount, currency,
                Decimal(per_credit) if per_credit is not None else None)


@pytest.mark.parametrize(("packs", "expected"), [
    # the bundled catalogue: 5, 4.5454... and 4.1666... cents a credit: 9.09 % and 16.67 % less, rounded down
    ([pack("starter", 100, 500, per_credit="5"), pack("standard", 550, 2500, per_credit="4.5455"),
      pack("pro", 1200, 5000, per_credit="4.1667")],
     {"starter": (None, False), "standard": (9, False), "pro": (16, True)}),
    # a bigger pack that costs more per credit saves nothing, and is not the best value
    ([pack("a", 100, 500), pack("b", 300, 1600)], {"a": (None, False), "b": (None, False)}),
    # 0.5 % less: nothing worth saying, but still the lowest price per credit
    ([pack("a", 200, 1000), pack("b", 1000, 4975)], {"a": (None, False), "b": (None, True)}),
    # a single pack: no comparison
    ([pack("only", 97, 1300)], {"only": (None, False)}),
    # currencies are compared apart: each has its own smallest pack
    ([pack("us", 100, 500), pack("us2", 301, 1000), pack("jp", 100, 700, "jpy"), pack("jp2", 1000, 6930, "jpy")],
     {"us": (None, False), "us2": (33, True), "jp": (None, False), "jp2": (1, True)}),
    # decided on the exact price, not the rounded one shown: 1/3 and 3333/10000 both show as 0.3333
    ([pack("a", 3, 1, per_credit="0.3333"), pack("b", 10000, 3333, per_credit="0.3333")],
     {"a": (None, False), "b": (None, True)}),
])
def test_savings_and_the_best_value(packs: list[Pack], expected: dict[str, tuple[int | None, bool]]) -> None:
    values = pack_values(packs)
    assert {pack_id: (value.saving, value.best) for pack_id, value in values.items()} == expected
    assert all(values[p.id] == PackValue(p.per_credit, *expected[p.id]) for p in packs)
