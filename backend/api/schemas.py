"""Request bodies. Strict: wrong types, unknown fields and out-of-range numbers are refused."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator, model_validator

from backend import periods
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


class CheckoutBody(Body):
    packId: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    returnUrl: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None
    state: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None


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
