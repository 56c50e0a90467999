"""Request bodies. Strict: wrong types, unknown fields and out-of-range numbers are refused."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

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


class SpendBody(Body):
    amount: Annotated[int, Field(ge=1, le=MAX_CREDITS)]
    idempotencyKey: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
    description: ShortText | None = None
