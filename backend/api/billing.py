"""``/api/billing``: the packs, starting a checkout, verifying a payment, cancelling a checkout, the receipts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend import purchases, receipts
from backend.api.answers import (
    BillingDetailsAnswer,
    CancelAnswer,
    CheckoutAnswer,
    PacksAnswer,
    ReceiptsAnswer,
    VerificationAnswer,
)
from backend.api.deps import ServicesDep, UserDep
from backend.api.errors import BODY_ERRORS, INVALID_TEXT, QUERY_ERRORS, SIGNED_IN, documented
from backend.api.schemas import BillingDetailsBody, CancelBody, CheckoutBody
from backend.errors import (
    InvalidReturnUrl,
    InvalidTaxId,
    PaymentProviderRejected,
    PaymentProviderUnavailable,
    RateLimited,
    UnknownPack,
    UnknownSession,
)

# Every route answers 400 invalid_text to NUL in its query (app.RefuseNul), whatever it takes.
router = APIRouter(prefix="/api/billing", responses=documented(INVALID_TEXT))


@router.get("/packs", response_model=PacksAnswer)
def packs(services: ServicesDep) -> dict[str, object]:
    tax_added = services.tax_added
    return {"packs": [pack.as_json(tax_added=tax_added) for pack in services.catalogue.packs]}


@router.get("/receipts", response_model=ReceiptsAnswer, responses=documented(SIGNED_IN))
def receipt_list(services: ServicesDep, user: UserDep) -> dict[str, object]:
    """The user's receipts, newest first: every paid purchase has one."""
    with services.db.read() as conn:
        link = receipts.linker(conn, services.public_url)
        return {"receipts": [receipt.as_json(link(receipt.order_id)) for receipt in receipts.for_user(conn, user.id)]}


@router.get("/details", response_model=BillingDetailsAnswer, responses=documented(SIGNED_IN))
def billing_details(services: ServicesDep, user: UserDep) -> dict[str, object]:
    """The user's billing details (blank, and no tax id, until set)."""
    return purchases.read_billing_details(services, user).as_json()


@router.put("/details", response_model=BillingDetailsAnswer, responses=documented(
    BODY_ERRORS, SIGNED_IN, InvalidTaxId, RateLimited, PaymentProviderUnavailable, PaymentProviderRejected))
async def set_billing_details(body: BillingDetailsBody, services: ServicesDep, user: UserDep) -> dict[str, object]:
    """Set the billing details printed on every receipt after this (in Stripe mode, on Stripe's invoices)."""
    return (await purchases.save_billing_details(services, user, body.details())).as_json()


@router.post("/checkout", response_model=CheckoutAnswer, responses=documented(
    BODY_ERRORS, SIGNED_IN, UnknownPack, InvalidReturnUrl, RateLimited, PaymentProviderUnavailable,
    PaymentProviderRejected))
async def checkout(body: CheckoutBody, services: ServicesDep, user: UserDep) -> dict[str, object]:
    order = await purchases.start_checkout(services, user, body.packId, body.returnUrl, body.state,
                                           save_card=body.saveCard)
    return {"sessionId": order.session_id, "url": order.checkout_url, "orderId": order.id}


@router.get("/verify-payment", response_model=VerificationAnswer, responses=documented(
    QUERY_ERRORS, SIGNED_IN, UnknownSession, RateLimited, PaymentProviderUnavailable, PaymentProviderRejected))
async def verify_payment(
    services: ServicesDep, user: UserDep,
    session_id: Annotated[str, Query(min_length=1, max_length=255)],
) -> dict[str, object]:
    return (await purchases.verify_payment(services, user, session_id)).as_json()


@router.post("/cancel", response_model=CancelAnswer, responses=documented(
    BODY_ERRORS, SIGNED_IN, UnknownSession, PaymentProviderUnavailable, PaymentProviderRejected))
async def cancel(body: CancelBody, services: ServicesDep, user: UserDep) -> dict[str, object]:
    order = await purchases.cancel_checkout(services, user, body.sessionId)
    return {"sessionId": order.session_id, "status": order.status}
