"""A ledger entry and its types: the leaf that the ledger and everything reacting to its entries (alerts, usage,
support) share, so that none of them needs to import another to name an entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import RowMapping

EntryType = Literal["purchase", "spend", "refund", "refund_reversal", "dispute", "dispute_reversal", "adjustment",
                    "expiry", "bonus"]
ENTRY_TYPES: tuple[str, ...] = get_args(EntryType)
# Credits taken back because a payment was refunded or disputed, and entries that give them back. Neither
# counts as spending.
CLAWBACK_TYPES: tuple[str, ...] = ("refund", "dispute")
CLAWBACK_REVERSAL_TYPES: tuple[str, ...] = ("refund_reversal", "dispute_reversal")


@dataclass(frozen=True)
class Entry:
    id: int
    user_id: int
    type: str
    amount: int
    balance_after: int
    reference: str
    description: str
    created_at: str
    feature: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> Entry:
        return cls(
            id=row["id"], user_id=row["user_id"], type=row["type"], amount=row["amount"],
            balance_after=row["balance_after"], reference=row["reference"],
            description=row["description"] or "", created_at=row["created_at"], feature=row.get("feature"),
        )
