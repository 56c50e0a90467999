"""Auto top-up as the backend answers it (``GET/PUT /api/credits/auto-topup``, an extension: docs/api.md), and the
plain words the app says about it (no Qt): what will be charged, within which limits, and why it is off."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from desktop.core.spend_models import _int, _optional_int

REASONS = {  # the fix names the dialog's button (it buys the pack once with the card saved and turns it on)
    "card_declined": "your card was declined. Buy and save card… pays with another card and turns it on again.",
    "authentication_required": "your bank asked to confirm a payment, which cannot be done while you are away. "
                               "Buy and save card… lets you confirm the card and turns it on again.",
}


@dataclass(frozen=True)
class Topup:
    id: str
    kind: str  # charge | notify
    status: str  # in_flight, succeeded, failed, notified, undoing, undone
    pack_name: str
    credits: int
    amount: int
    currency: str
    failure: str | None
    created_at: str
    undo_until: str | None
    undoable: bool
    refunded: int | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Topup:
        return cls(id=str(body["id"]), kind=str(body["kind"]), status=str(body["status"]),
                   pack_name=str(body["packName"]), credits=_int(body["credits"]), amount=_int(body["amount"]),
                   currency=str(body["currency"]), failure=body.get("failure"), created_at=str(body["createdAt"]),
                   undo_until=body.get("undoUntil"), undoable=bool(body["undoable"]),
                   refunded=_optional_int(body.get("refunded")))


@dataclass(frozen=True)
class AutoTopupState:
    enabled: bool
    notify_only: bool
    threshold: int | None
    pack_id: str | None
    monthly_limit: int | None
    currency: str | None
    max_per_day: int
    card_saved: bool
    disabled_reason: str | None
    used_this_month: int
    topups_today: int
    topups: tuple[Topup, ...]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> AutoTopupState:
        return cls(enabled=bool(body["enabled"]), notify_only=bool(body["notifyOnly"]),
                   threshold=_optional_int(body["threshold"]), pack_id=body.get("packId"),
                   monthly_limit=_optional_int(body["monthlyLimit"]), currency=body.get("currency"),
                   max_per_day=_int(body["maxPerDay"]), card_saved=bool(body["cardSaved"]),
                   disabled_reason=body.get("disabledReason"), used_this_month=_int(body["usedThisMonth"]),
                   topups_today=_int(body["topupsToday"]),
                   topups=tuple(Topup.from_json(t) for t in body["topups"]))

    @property
    def undoable(self) -> Topup | None:
        """The newest top-up Undo can still take back."""
        return next((t for t in self.topups if t.undoable), None)


@dataclass(frozen=True)
class UndoResult:
    topup_id: str
    refunded: int
    currency: str
    credits: int
    balance: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> UndoResult:
        return cls(topup_id=str(body["topupId"]), refunded=_int(body["refunded"]), currency=str(body["currency"]),
                   credits=_int(body["credits"]), balance=_int(body["balance"]))


Money = Callable[[int, str], str]


def plan(*, threshold: int, pack_name: str, credits: int, price: int, currency: str, monthly_limit: int,
         max_per_day: int, notify_only: bool, card_saved: bool, money: Money) -> str:
    """What turning it on with these choices does, in plain words: what is charged, when, and the limits."""
    if notify_only:
        return (f"When your balance falls below {threshold:,} credits, Creditdesk tells you and offers the "
                f"{pack_name} pack ({credits:,} credits for {money(price, currency)}). Nothing is charged.")
    times = "once" if max_per_day == 1 else f"{max_per_day} times"
    first = ("" if card_saved else
             " The first top-up is a normal purchase: your card is saved then, for the top-ups that follow.")
    return (f"When your balance falls below {threshold:,} credits, your saved card is charged "
            f"{money(price, currency)} for the {pack_name} pack ({credits:,} credits), at most {times} a day and "
            f"never more than {money(monthly_limit, currency)} a month. Each top-up can be undone for 24 hours: "
            f"what you have not spent of it is refunded.{first}")


def status_text(state: AutoTopupState | None, money: Money) -> str:
    if state is None or state.threshold is None:
        return "Auto top-up is off."
    if not state.enabled:
        reason = REASONS.get(state.disabled_reason or "")
        return f"Auto top-up is off: {reason}" if reason else "Auto top-up is off."
    mode = "notify only" if state.notify_only else "on"
    used = (f" {money(state.used_this_month, state.currency)} of {money(state.monthly_limit, state.currency)} used "
            f"this month; {state.topups_today} of {state.max_per_day} today.") if state.currency and \
        state.monthly_limit is not None and not state.notify_only else ""
    return f"Auto top-up is {mode}.{used}"
