"""Request bodies. Strict: wrong types, unknown fields and out-of-range numbers are refused."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator, model_validator

from backend import periods, support_reports
from backend.billing_details import COUNTRIES, LIMITS, TAX_ID_TYPES, BillingDetails
from backend.spend_controls import MAX_THRESHOLDS

MAX_CREDITS = 1_000_000_000

Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]
ShortText = Annotated[str, StringConstraints(max_length=500)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RegisterBody(Body):
    email: Annotated[EmailStr, StringConstraints(max_length=254)]
    password: Password


class LoginBody(Body):
    email: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class PasswordResetBody(Body):
    email: Annotated[str, StringConstraints(min_length=1, max_length=254)]


class PasswordResetConfirmBody(Body):
    email: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    code: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    password: Password  # the rules of register's


class CheckoutBody(Body):
    packId: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    returnUrl: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None
    state: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    # Extension (auto top-up): Checkout saves the card for the top-ups that follow (setup_future_usage=off_session).
    saveCard: bool = False


Token = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
Credits = Annotated[int, Field(ge=0, le=MAX_CREDITS)]


class CancelBody(Body):
    sessionId: Annotated[str, StringConstraints(min_length=1, max_length=255)]


class SpendBody(Body):
    amount: Annotated[int, Field(ge=1, le=MAX_CREDITS)]
    idempotencyKey: Token
    description: ShortText | None = None
    feature: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    confirmationToken: Token | None = None


class HoldBody(SpendBody):
    expiresInSeconds: Annotated[int, Field(ge=1, le=24 * 3600)] | None = None


class SettleBody(Body):
    amount: Annotated[int, Field(ge=0, le=MAX_CREDITS)]


class VoidBody(Body):
    pass


class CapsBody(Body):
    day: Credits | None = None
    week: Credits | None = None
    month: Credits | None = None


class ControlsBody(Body):
    """A change of the spend controls: fields left out stay as they are, ``null`` clears one."""

    timeZone: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    caps: CapsBody | None = None
    confirmAbove: Credits | None = None
    lowBalanceAlerts: Annotated[list[Credits], Field(max_length=MAX_THRESHOLDS)] | None = None

    @field_validator("timeZone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and not periods.is_time_zone(value):
            raise ValueError("not an IANA time zone name, such as Europe/Paris")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields sent, under the names of :meth:`backend.spend_controls.Controls.values`."""
        found: dict[str, Any] = {}
        if "timeZone" in self.model_fields_set:
            found["timeZone"] = self.timeZone or periods.DEFAULT_TIME_ZONE
        if "caps" in self.model_fields_set:
            for period in periods.PERIODS:
                if self.caps is None or period in self.caps.model_fields_set:
                    found[f"caps.{period}"] = getattr(self.caps, period) if self.caps else None
        if "confirmAbove" in self.model_fields_set:
            found["confirmAbove"] = self.confirmAbove
        if "lowBalanceAlerts" in self.model_fields_set:
            found["lowBalanceAlerts"] = self.lowBalanceAlerts or []
        return found


class ReadAlertsBody(Body):
    ids: Annotated[list[Annotated[int, Field(ge=1, le=2**62)]], Field(max_length=1000)] | None = None
    all: bool | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ReadAlertsBody:
        if (self.ids is None) == (self.all is not True):
            raise ValueError('send either "ids" or "all": true')
        return self


class DiagnosticsReportBody(BaseModel):
    """The app's diagnostics report (``creditdesk --diagnostics`` prints the same JSON): its version and time are
    required; its sections are kept as sent (a newer app may add some), within bounds of size and nesting."""

    model_config = ConfigDict(extra="allow", strict=True)

    report_version: Annotated[int, Field(ge=1, le=1000)]
    generated_at: Annotated[str, StringConstraints(min_length=1, max_length=64)]

    @model_validator(mode="after")
    def _bounded(self) -> DiagnosticsReportBody:
        whole = self.model_dump()
        if support_reports.depth(whole) > support_reports.MAX_REPORT_DEPTH:
            raise ValueError(f"the report nests deeper than {support_reports.MAX_REPORT_DEPTH} levels")
        if len(json.dumps(whole, ensure_ascii=False).encode()) > support_reports.MAX_REPORT_BYTES:
            raise ValueError(f"the report is larger than {support_reports.MAX_REPORT_BYTES:,} bytes")
        return self


class SupportReportBody(Body):
    """Help → Report a problem: the user's own words and the diagnostics report they read before sending."""

    message: Annotated[str, StringConstraints(min_length=1, max_length=support_reports.MAX_MESSAGE_CHARS)]
    report: DiagnosticsReportBody

    @field_validator("message")
    @classmethod
    def _says_something(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("say what went wrong")
        return value


# One-line texts printed on receipts: bounded, without control characters, spaces around them dropped.
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
BillingName = Annotated[str, StringConstraints(max_length=LIMITS["name"], strip_whitespace=True, pattern=ONE_LINE)]
AddressLine = Annotated[str, StringConstraints(max_length=LIMITS["line1"], strip_whitespace=True, pattern=ONE_LINE)]
PostalCode = Annotated[str, StringConstraints(max_length=LIMITS["postal_code"], strip_whitespace=True,
                                              pattern=ONE_LINE)]


class AddressBody(Body):
    line1: AddressLine = ""
    line2: AddressLine = ""
    city: AddressLine = ""
    postalCode: PostalCode = ""
    state: AddressLine = ""
    country: Annotated[str, StringConstraints(max_length=2, strip_whitespace=True, to_upper=True)] = ""

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str) -> str:
        if value and value not in COUNTRIES:
            raise ValueError("not an ISO 3166-1 alpha-2 country code, such as DE or US")
        return value


class TaxIdBody(Body):
    type: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    value: Annotated[str, StringConstraints(min_length=1, max_length=LIMITS["tax_id_value"], strip_whitespace=True,
                                            pattern=ONE_LINE)]

    @field_validator("type")
    @classmethod
    def _stripe_type(cls, value: str) -> str:
        if value not in TAX_ID_TYPES:
            raise ValueError("not a tax id type Stripe takes, such as eu_vat, gb_vat or us_ein")
        return value


class BillingDetailsBody(Body):
    """The buyer's billing details, all of them: a field left out is blank, ``taxId`` null is none."""

    name: BillingName = ""
    address: AddressBody = Field(default_factory=AddressBody)
    taxId: TaxIdBody | None = None

    def details(self) -> BillingDetails:
        a = self.address
        return BillingDetails(name=self.name, line1=a.line1, line2=a.line2, city=a.city, postal_code=a.postalCode,
                              state=a.state, country=a.country, tax_id_type=self.taxId.type if self.taxId else None,
                              tax_id_value=self.taxId.value if self.taxId else None)


class AutoTopupBody(Body):
    """``PUT /api/credits/auto-topup`` (extension): ``{"enabled": false}`` alone turns it off."""

    enabled: bool
    threshold: Annotated[int, Field(ge=1, le=MAX_CREDITS)] | None = None
    packId: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    monthlyLimit: Annotated[int, Field(ge=1, le=10**12)] | None = None
    maxPerDay: Annotated[int, Field(ge=1, le=24)] | None = None
    notifyOnly: bool | None = None
