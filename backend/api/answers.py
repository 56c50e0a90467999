"""What the routes answer: one model per JSON answer, which FastAPI checks each answer against, serialises by,
and describes in ``/openapi.json``.

Field names are the contract's, in camelCase as the JSON spells them (as in :mod:`backend.api.schemas`).
Strict and closed: a value of another type, or a key that the model does not name, is a bug of ours that
fails the request (500, logged) instead of changing the answer unseen. A key that is sometimes left out
(not ``null``: absent) is an :func:`absent` field. ``...Answer`` is a route's whole answer; ``...Json`` a
part of one, the JSON of one backend object. The logic below the routes keeps answering plain dicts (its
``as_json``); only the routes know these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from backend.alerts import Kind
from backend.order_status import Status
from backend.periods import Period


class Json(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def absent(description: str) -> Any:
    """A field left out of the answer when it has no value (declare it ``X | SkipJsonSchema[None]``): never
    ``null``, and documented as an optional ``X``."""
    return Field(None, description=description, exclude_if=lambda value: value is None,
                 json_schema_extra=_no_default)


# -- health ---------------------------------------------------------------------------------------------------

class ProviderHealthJson(Json):
    state: Literal["available", "unavailable", "recovering"]
    retryAfter: int | SkipJsonSchema[None] = absent("Seconds until the breaker lets a call through (unavailable).")


class HealthAnswer(Json):
    status: Literal["ok"]
    payments: Literal["stripe", "stub"]
    version: str
    paymentProvider: ProviderHealthJson
    storage: Literal["available", "unavailable"]


class LiveAnswer(Json):
    status: Literal["ok"]
    version: str


class DatabaseCheckJson(Json):
    state: Literal["available"]
    schema_: str | None = Field(alias="schema", description="The schema version the database is at.")
    needs: str = Field(description="The schema version this code needs.")


class ChecksJson(Json):
    paymentProvider: ProviderHealthJson
    database: DatabaseCheckJson


class ReadyAnswer(Json):
    """A replica that should get traffic. (Not ready is 503: the error body, with ``status`` ``not_ready`` and the
    ``checks`` beside it.)"""

    status: Literal["ready"]
    checks: ChecksJson


# -- accounts -------------------------------------------------------------------------------------------------

class UserJson(Json):
    id: int
    email: str


class AuthAnswer(Json):
    token: str
    user: UserJson


class PasswordResetAnswer(Json):
    """The same for every address, whether or not it has an account."""

    status: Literal["sent_if_registered"]
    message: str
    expiresInSeconds: int = Field(description="How long a code that was sent stays good.")


# -- packs and checkout ---------------------------------------------------------------------------------------

class PackJson(Json):
    id: str
    name: str
    credits: int
    amount: int = Field(description="The price, in the currency's minor unit.")
    currency: str = Field(description="ISO 4217, lower case.")
    pricePerCredit: str = Field(description="The price of one credit in the currency's minor unit, a decimal "
                                            "string to 4 places, trailing zeros dropped (1000 for 333 credits: "
                                            "\"3.003\").")
    tax: Literal["exclusive", "inclusive"] | None = Field(
        description="How checkout's tax meets the price (an extension): exclusive (added on top at checkout), "
                    "inclusive (held in the price), or null when checkout adds no tax.")


class ReceiptJson(Json):
    orderId: str
    sessionId: str
    packId: str
    credits: int
    amount: int = Field(description="What was paid, in the currency's minor unit.")
    currency: str
    tax: int = Field(description="Of the amount, the tax, in the minor unit.")
    discount: int = Field(description="Taken off the list price, in the minor unit.")
    paidAt: str = Field(description="When the credits were granted (ISO 8601, UTC).")
    url: str = Field(description="Opens the receipt in a browser, without signing in: Stripe's hosted invoice in "
                                 "Stripe mode once known, else the backend's own receipt page.")
    invoicePdf: str | None = Field(description="Stripe's PDF of the invoice, where there is one (Stripe mode); "
                                               "else null.")


class ReceiptsAnswer(Json):
    receipts: list[ReceiptJson]


class AddressJson(Json):
    line1: str
    line2: str
    city: str
    postalCode: str
    state: str
    country: str = Field(description="ISO 3166-1 alpha-2 (upper case), or empty.")


class TaxIdJson(Json):
    type: str = Field(description="Stripe's tax id type, such as eu_vat.")
    value: str


class BillingDetailsAnswer(Json):
    name: str
    address: AddressJson
    taxId: TaxIdJson | None


class PacksAnswer(Json):
    packs: list[PackJson]


class CheckoutAnswer(Json):
    sessionId: str
    url: str = Field(description="Where the buyer pays: the provider's Checkout page.")
    orderId: str


class VerificationAnswer(Json):
    sessionId: str
    status: Status
    creditsGranted: int
    balance: int
    payment: PaymentJson | SkipJsonSchema[None] = absent("What was paid, once the order is paid (an extension).")


class CancelAnswer(Json):
    sessionId: str
    status: Status


# -- credits --------------------------------------------------------------------------------------------------

class GrantJson(Json):
    id: int
    kind: str = Field(description="paid or promotional (extension).")
    source: str = Field(description="purchase, adjustment, signup, migration, debt or reversal.")
    description: str
    amount: int = Field(description="The credits it granted.")
    remaining: int = Field(description="What is left of them (below zero: a debt after a clawback).")
    createdAt: str
    expiresAt: str | None = Field(description="When what is left expires; null: never, or expired already.")
    expiredAt: str | None = Field(description="When it expired; what is left was spared by holds open then.")


class NextExpiryJson(Json):
    at: str
    credits: int


class BalanceAnswer(Json):
    balance: int
    paid: int = Field(description="Of the balance, paid credits (extension: grants).")
    promotional: int = Field(description="Of the balance, promotional credits, spent before paid ones (extension).")
    nextExpiry: NextExpiryJson | None = Field(description="The next credits to expire and when (extension).")
    grants: list[GrantJson] = Field(description="The grants holding credits, in the order they are spent "
                                                "(extension).")


class PaymentJson(Json):
    amount: int = Field(description="What was paid: Checkout's amount_total (the list price for orders paid "
                                    "before totals were kept), in the currency's minor unit.")
    currency: str
    listPrice: int = Field(description="The pack's price when it was bought, in the minor unit.")
    discount: int = Field(description="Taken off the list price (a promotion code), in the minor unit.")
    tax: int = Field(description="Of the amount paid, the tax, in the minor unit.")


class TransactionJson(Json):
    id: int
    type: str = Field(description="purchase, spend, refund, refund_reversal, dispute, dispute_reversal, "
                                  "adjustment (more may be added).")
    amount: int
    balanceAfter: int
    createdAt: str
    reference: str
    description: str
    orderId: str | SkipJsonSchema[None] = absent("The order behind a purchase's credits.")
    payment: PaymentJson | SkipJsonSchema[None] = absent("What was paid for a purchase's credits.")
    autoTopup: bool | SkipJsonSchema[None] = absent("True on a purchase that auto top-up made (its own alert, with "
                                                    "Undo, announced it); absent otherwise.")


class TransactionsAnswer(Json):
    transactions: list[TransactionJson]
    nextCursor: str | None


class SpendAnswer(Json):
    transactionId: int
    balance: int


class HoldAnswer(Json):
    id: str
    amount: int
    status: Literal["open"] = Field(description="Always open: a repeated key answers as the first time did.")
    expiresAt: str
    available: int = Field(description="The balance less what open holds reserve, this hold included, then.")


class SettleAnswer(Json):
    transactionId: int | None = Field(description="The spend entry; null for a settle of 0, which spends nothing.")
    spent: int
    released: int
    balance: int


class VoidAnswer(Json):
    released: int
    balance: int


class HoldJson(Json):
    id: str
    amount: int
    status: Literal["open", "settled", "voided", "expired"]
    description: str
    feature: str | None
    createdAt: str
    expiresAt: str
    closedAt: str | None = Field(description="When it was settled or voided, or expired; null while open.")
    spent: int | None = Field(description="What its settle spent (0 for a void or an expiry); null while open.")
    released: int | None = Field(description="What it gave back to the available balance; null while open.")
    transactionId: int | None = Field(description="The spend entry of its settle, if it spent anything.")


class HoldsAnswer(Json):
    holds: list[HoldJson]
    reserved: int = Field(description="What the open holds reserve now.")
    available: int = Field(description="The balance less what the open holds reserve.")


# -- spend controls, alerts, usage ----------------------------------------------------------------------------

class CapsJson(Json):
    day: int | None
    week: int | None
    month: int | None


# A control's value: a time zone, a cap or confirmAbove (null: none), the low-balance thresholds.
ControlValue = str | int | list[int] | None


class ControlChangeJson(Json):
    changedAt: str
    field: str = Field(description="timeZone, caps.day, caps.week, caps.month, confirmAbove or lowBalanceAlerts.")
    old: ControlValue
    new: ControlValue


class PeriodUseJson(Json):
    cap: int | None
    used: int
    startsAt: str
    resetsAt: str


class PeriodsJson(Json):
    day: PeriodUseJson
    week: PeriodUseJson
    month: PeriodUseJson


class ControlsAnswer(Json):
    timeZone: str
    caps: CapsJson
    confirmAbove: int | None
    lowBalanceAlerts: list[int]
    history: list[ControlChangeJson]
    periods: PeriodsJson


class AlertJson(Json):
    id: int
    kind: Kind
    createdAt: str
    readAt: str | None
    message: str
    data: dict[str, Any] = Field(description="The facts of its kind (docs/api.md lists them).")


class AlertsAnswer(Json):
    alerts: list[AlertJson]
    nextCursor: str | None
    unread: int


class UnreadAnswer(Json):
    unread: int


class BucketJson(Json):
    start: str
    spent: int
    purchased: int
    clawedBack: int
    adjusted: int


class TotalsJson(Json):
    spent: int
    purchased: int
    clawedBack: int
    adjusted: int
    openingBalance: int
    closingBalance: int
    spentPaid: int = Field(description="Of spent, paid credits (extension: grants; spends from before grants are "
                                       "in neither).")
    spentPromotional: int = Field(description="Of spent, promotional credits (extension).")
    expired: int = Field(description="Credits that expired in the range, counted in adjusted (extension).")


class DescriptionSpendJson(Json):
    description: str
    spent: int
    rest: Literal[True] | SkipJsonSchema[None] = absent("The last row, which sums everything beyond nine rows.")


class ForecastJson(Json):
    dailyAverage7: float
    dailyAverage30: float
    daysLeft: int | None
    daysLeft30: int | None
    activeDays: int
    balance: int


class UsageAnswer(Json):
    timeZone: str
    granularity: Period
    from_: str = Field(alias="from")
    to: str
    buckets: list[BucketJson]
    totals: TotalsJson
    byDescription: list[DescriptionSpendJson]
    forecast: ForecastJson


# -- Stripe webhooks ------------------------------------------------------------------------------------------

class WebhookAnswer(Json):
    received: Literal[True]
    outcome: str = Field(description="What processing did (docs/api.md lists the outcomes).")


# -- support ----------------------------------------------------------------------------------------------------

class SupportReportAnswer(Json):
    reportId: str = Field(description="The report's id (rep_...), for the user to quote to support.")
    receivedAt: str = Field(description="When the backend kept it (ISO 8601, UTC).")


class TopupJson(Json):
    id: str
    kind: Literal["charge", "notify"]
    status: Literal["in_flight", "succeeded", "failed", "notified", "undoing", "undone"]
    packId: str
    packName: str
    credits: int
    amount: int
    currency: str
    orderId: str | None
    failure: str | None = Field(description="card_declined or authentication_required, for a failed top-up")
    createdAt: str
    succeededAt: str | None
    undoUntil: str | None
    undoable: bool
    refunded: int | None


class AutoTopupAnswer(Json):
    enabled: bool
    notifyOnly: bool
    threshold: int | None
    packId: str | None
    monthlyLimit: int | None
    currency: str | None
    maxPerDay: int
    cardSaved: bool = Field(description="A top-up's Checkout saved a card: later top-ups charge it off session")
    disabledReason: str | None = Field(
        description="Why auto top-up turned itself off: card_declined or authentication_required")
    usedThisMonth: int
    topupsToday: int
    topups: list[TopupJson]


class UndoAnswer(Json):
    topupId: str
    refunded: int
    currency: str
    credits: int = Field(description="Credits taken back (the unspent part of the top-up)")
    balance: int
