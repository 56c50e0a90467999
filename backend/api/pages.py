"""The browser pages: Checkout's success and cancel URLs, and the stub checkout page."""

from __future__ import annotations

import functools
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from anyio import to_thread
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

import resources
from backend import billing_details, orders, purchases, receipts, webhooks
from backend.api.deps import ClientAddressDep, ServicesDep
from backend.api.errors import QUERY_ERRORS, RETRY_AFTER, STORAGE, answer_for, documented_for_non_json
from backend.errors import CreditdeskError, Retryable, SessionNotFound
from backend.order_status import AFTER_PAYMENT, CANCELLED, EXPIRED, PENDING
from backend.orders import Order
from backend.payments.base import PROMOTION_PREFIX
from backend.services import Services
from resources import currencies

router = APIRouter()



@functools.cache
def _templates() -> Any:
    """The pages' templates, loaded at the first page (jinja2 stays out of an idle backend's memory)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(resources.path("templates")), autoescape=True,
                              undefined=jinja2.StrictUndefined)

NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
PENDING_REFRESH_SECONDS = 10  # well within the page's limit per checkout
NONE = "'none'"

HTML = {"text/html": {"schema": {"type": "string"}}}
Responses = dict[int | str, dict[str, Any]]
OUTCOME_PAGE: Responses = {200: {
    "description": "A page stating the payment's outcome; its script hands it to the app's returnUrl (with "
                   "session_id, state and status) in the background",
    "content": HTML}}
NOT_FOUND_PAGE: Responses = {404: {"description": "A page saying the checkout is not known", "content": HTML}}
# Bad text or fields in the query are refused before the page (JSON, as everywhere); the rest is a page.
FAILURE_PAGES: Responses = {
    **NOT_FOUND_PAGE, **documented_for_non_json(QUERY_ERRORS),
    429: {"description": "A page saying to try again later", "content": HTML, "headers": RETRY_AFTER},
    503: {"description": "A page saying to try again later", "content": HTML, "headers": RETRY_AFTER},
}
RESULT_PAGE_RESPONSES: Responses = {**OUTCOME_PAGE, **FAILURE_PAGES}
STUB_RESPONSES: Responses = {**NOT_FOUND_PAGE, **documented_for_non_json(QUERY_ERRORS, STORAGE)}
LOCATION = {"Location": {"description": "Where the browser goes on to", "schema": {"type": "string"}}}


def redirect(description: str) -> Responses:
    """A 303 (no body: the browser follows ``Location``)."""
    return {303: {"description": description, "headers": LOCATION}}


MESSAGES = {
    "paid": ("Payment received", "{credits} credits were added to your balance."),
    "refunded": ("Payment refunded", "This payment was refunded and its credits were taken back."),
    "disputed": ("Payment disputed", "This payment is being disputed with your bank; its credits are on hold."),
    "charged_back": ("Payment reversed", "Your bank reversed this payment and its credits were taken back."),
    "pending": ("Payment being confirmed",
                "Your payment has not been confirmed yet. This page updates by itself, and your credits appear "
                "in Creditdesk as soon as it is."),
    "cancelled": ("Checkout cancelled", "Nothing was charged."),
    "processing": ("Payment being processed",
                   "This checkout was completed with a payment your bank is still processing (which can take a few "
                   "days), so it can no longer be cancelled. Your credits appear in Creditdesk when it clears; if it "
                   "fails, nothing is charged."),
    "expired": ("Checkout expired", "This checkout has expired and nothing was charged."),
    "failed": ("Payment failed", "The payment did not go through and nothing was charged."),
}


def page(services: Services, template: str, status_code: int = 200, *, connect: str | None = None,
         **context: Any) -> HTMLResponse:
    """A page with a strict Content-Security-Policy: its one inline script runs by nonce, and it may reach only
    ``connect`` (the desktop app's loopback listener) besides itself."""
    nonce = secrets.token_urlsafe(16)
    html = _templates().get_template(template).render(stub=services.stub is not None, nonce=nonce, **context)
    policy = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
              f"connect-src {connect or NONE}; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
    return HTMLResponse(html, status_code=status_code, headers={**NO_STORE, "Content-Security-Policy": policy})


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def result_page(services: Services, order: Order, *, refresh_pending: bool = False, shown: str | None = None
                ) -> Response:
    """The payment's real outcome, in the browser, whether or not the app still listens.

    The result is handed to the app's ``returnUrl`` by a background request from the page (see base.html),
    never by redirecting the browser there: an app that stopped listening would leave the browser on an error
    page. Chromium's Local Network Access allows that request at once from a backend on loopback (the bundled
    one); from a public backend Chromium first asks the user, and where that is refused the app still learns of
    the payment by asking the backend itself.
    """
    status = shown or order.status
    title, message = MESSAGES.get(status, MESSAGES["pending"])
    handoff = None
    if order.return_url:
        handoff = purchases.with_query(
            order.return_url, session_id=order.session_id, state=order.state,
            status=order.status if status == "processing" else status,
        )
    refresh = PENDING_REFRESH_SECONDS if refresh_pending and order.status == PENDING else None
    receipt = None
    paid = order.status in AFTER_PAYMENT
    if paid:
        with services.db.read() as conn:
            receipt = receipts.link(conn, services.public_url, order.id)
    # What was paid once it was (with its tax, less its discount); until then the pack's price.
    price = shown_price(order.amount_charged if paid else order.amount, order.currency)
    return page(services, "result.html", title=title, message=message.format(credits=f"{order.credits:,}"),
                order=order, outcome=status, price=price, paid=paid,
                handoff=handoff, refresh=refresh, connect=_origin(handoff) if handoff else None, receipt=receipt)


def not_found(services: Services) -> HTMLResponse:
    return page(services, "result.html", 404, title="Checkout not found",
                message="We could not find this checkout. If you paid, your app shows the payment.", order=None)


def error_page(services: Services, exc: CreditdeskError) -> HTMLResponse:
    """A failure as a page, with the status and the sentence the API would answer."""
    answer = answer_for(exc)
    response = page(services, "result.html", answer.status, title="Please try again later",
                    message=answer.message.format(exc=exc), order=None)
    if isinstance(exc, Retryable):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def limit_page_hits(services: Services, address: str, kind: str, key: str) -> None:
    """The pages need no sign-in and each hit may ask the provider: count them per address and per checkout."""
    services.limiter.hit(services.settings.page_limit_per_address, "page-address", address)
    if key:
        services.limiter.hit(services.settings.page_limit_per_checkout, kind, key)


@router.get("/account/credits/success", response_class=HTMLResponse, responses=RESULT_PAGE_RESPONSES)
async def success(
    services: ServicesDep, address: ClientAddressDep, session_id: Annotated[str, Query(max_length=255)] = ""
) -> Response:
    try:
        limit_page_hits(services, address, "page-session", session_id)
        order = await purchases.confirm_from_browser(services, session_id) if session_id else None
    except CreditdeskError as exc:
        return error_page(services, exc)
    return not_found(services) if order is None else result_page(services, order, refresh_pending=True)


@router.get("/account/credits/cancel", response_class=HTMLResponse, responses=RESULT_PAGE_RESPONSES)
async def cancel(
    services: ServicesDep, address: ClientAddressDep, order_id: Annotated[str, Query(max_length=255)] = "",
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """Checkout's cancel URL. A GET changes nothing (a browser's prefetch or a link scanner follows it too): it
    asks, and its button POSTs. An order no longer waiting for payment shows its outcome. ``done`` is what the
    button did, for the words only: ``cancelled`` (an order that Stripe's expiry made ``expired`` meanwhile is
    shown as the customer's cancel) or ``processing`` (a payment still clearing could not be cancelled)."""
    try:
        limit_page_hits(services, address, "page-order", order_id)
        order = await purchases.order_to_cancel(services, order_id) if order_id else None
    except CreditdeskError as exc:
        return error_page(services, exc)
    if order is None:
        return not_found(services)
    if done == "cancelled" and order.status in (CANCELLED, EXPIRED):
        return result_page(services, order, shown="cancelled")
    if done == "processing" and order.status == PENDING:
        return result_page(services, order, shown="processing")
    if order.status != PENDING:
        return result_page(services, order)
    return page(services, "cancel.html", title="Cancel this purchase?", order=order, outcome="asking",
                price=shown_price(order.amount, order.currency))


@router.post("/account/credits/cancel", status_code=303, response_class=RedirectResponse, responses={
    **redirect("Cancelled (or found paid, or still clearing): on to the page that says so"), **FAILURE_PAGES})
async def cancel_confirmed(
    services: ServicesDep, address: ClientAddressDep, order_id: Annotated[str, Query(max_length=255)] = ""
) -> Response:
    """The cancel page's button: expire the checkout and mark the order cancelled, then show the outcome (the
    page at the cancel URL, by a redirect, so that reloading it posts nothing again)."""
    try:
        limit_page_hits(services, address, "page-order", order_id)
        order = await purchases.cancel_from_browser(services, order_id) if order_id else None
    except CreditdeskError as exc:
        return error_page(services, exc)
    if order is None:
        return not_found(services)
    done = _cancel_outcome(order)
    query = urlencode({"order_id": order.id, **({"done": done} if done else {})})
    return RedirectResponse(f"{services.public_url}/account/credits/cancel?{query}", status_code=303,
                            headers=NO_STORE)


RECEIPT_RESPONSES: Responses = {
    200: {"description": "The receipt of a paid purchase", "content": HTML},
    404: {"description": "A page saying there is no such receipt (the same for a wrong key)", "content": HTML},
    **documented_for_non_json(QUERY_ERRORS, STORAGE)}
RECEIPT_NOTES = {
    "refunded": "This payment was refunded since.",
    "disputed": "This payment is being disputed with the bank.",
    "charged_back": "The bank reversed this payment since.",
}


@router.get("/receipts/{order_id}", response_class=HTMLResponse, responses=RECEIPT_RESPONSES)
def receipt_page(order_id: Annotated[str, Path(max_length=255)], services: ServicesDep,
                 key: Annotated[str, Query(max_length=64)] = "") -> Response:
    """A purchase's receipt, opened from the app or the outcome page: the link's key is its pass (no sign-in)."""
    with services.db.read() as conn:
        found = receipts.by_link(conn, order_id, key)
    if found is None:
        return page(services, "result.html", 404, title="Receipt not found",
                    message="There is no receipt at this address. Open it again from Creditdesk.", order=None)
    settings, currency = services.settings, found.currency
    billing = found.billing
    return page(services, "receipt.html", receipt=found, paid=shown_price(found.amount, currency),
                price=shown_price(found.price, currency), net=shown_price(found.net, currency),
                tax=shown_price(found.tax, currency), discount=shown_price(found.discount, currency),
                note=RECEIPT_NOTES.get(found.status, ""), seller=settings.seller_name,
                seller_address=settings.seller_address, seller_tax_id=settings.seller_tax_id,
                buyer_tax_id_name=billing_details.tax_id_name(billing.tax_id_type)
                if billing is not None and billing.tax_id_type else "")


def _cancel_outcome(order: Order) -> str:
    """What a cancel did, as the cancel page's ``done`` says it: ``cancelled`` (also when Stripe's expiry came
    first), ``processing`` (still pending: a payment clearing), or nothing (paid meanwhile, or failed)."""
    return {PENDING: "processing", CANCELLED: "cancelled", EXPIRED: "cancelled"}.get(order.status, "")


def _stub_session(services: Services, session_id: str) -> dict[str, Any] | None:
    stub = services.stub
    if stub is None or len(session_id) > 255:
        return None
    try:
        return stub.session_object(session_id)
    except SessionNotFound:
        return None


def _stub_order(services: Services, session_id: str) -> Order | None:
    with services.db.read() as conn:
        return orders.by_session(conn, session_id)


# What the stub checkout page says after its promotion code form, named in its query (``?promotion=refused``) by the
# redirect that follows the form (POST/redirect/GET: reloading the page posts nothing again). Only these words are
# ever shown: the query names one, it never carries text of its own.
PROMOTION_MESSAGES = {
    "refused": "This promotion code is not valid.",
    "missing": "Enter a promotion code.",
    "removed": "The promotion code was removed.",
}


@router.get("/stub/checkout/{session_id}", response_class=HTMLResponse, responses=STUB_RESPONSES)
def stub_checkout(session_id: str, services: ServicesDep,
                  promotion: Annotated[str, Query(max_length=20)] = "") -> Response:
    session = _stub_session(services, session_id)
    if session is None:
        return not_found(services)
    return _stub_checkout_page(services, session, promotion)


def _stub_checkout_page(services: Services, session: dict[str, Any], promotion: str = "") -> Response:
    item = session["line_items"][0]["price_data"]
    order = _stub_order(services, session["id"])
    discount = int(session.get("total_details", {}).get("amount_discount") or 0)
    tax = int(session.get("total_details", {}).get("amount_tax") or 0)
    applied = (session.get("discounts") or [{}])[0].get("promotion_code") or ""
    # The rate charged, as the receipt names it ("Tax (19 %)"): the stub's one rate, in the session's breakdown.
    taxes = (session.get("total_details", {}).get("breakdown") or {}).get("taxes") or [{}]
    rate = taxes[0].get("rate", {}).get("percentage")
    return page(services, "stub_checkout.html", session=session, product=item["product_data"],
                outcome=order.status if order is not None else None,
                price=shown_price(session["amount_total"], session["currency"]),
                subtotal=shown_price(session["amount_subtotal"], session["currency"]),
                discount=shown_price(discount, session["currency"]) if discount else None,
                tax=shown_price(tax, session["currency"]) if tax else None,
                tax_included=session["line_items"][0]["price_data"].get("tax_behavior") == "inclusive",
                tax_rate=f" ({rate} %)" if rate else "",
                promotion_code=applied.removeprefix(PROMOTION_PREFIX),
                promotion_codes=services.settings.promotion_codes and bool(services.catalogue.promotion_codes),
                promotion_message=PROMOTION_MESSAGES.get(promotion, ""), promotion_refused=promotion != "removed")


def _back_to_checkout(session_id: str, said: str = "") -> RedirectResponse:
    """The stub checkout page again, by a 303 (``said``: a key of PROMOTION_MESSAGES)."""
    query = f"?{urlencode({'promotion': said})}" if said else ""
    return RedirectResponse(f"/stub/checkout/{urllib.parse.quote(session_id, safe='')}{query}", status_code=303,
                            headers=NO_STORE)


def _promotion_form_target(services: Services, session_id: str) -> dict[str, Any] | None:
    """The open session a promotion code form may change: none without codes or when it is not the stub's."""
    session = _stub_session(services, session_id)
    if session is None or services.stub is None or not services.settings.promotion_codes:
        return None
    return session


@router.post("/stub/checkout/{session_id}/promotion-code", status_code=303, response_class=RedirectResponse,
             responses={**redirect("Back to the checkout page: with the discount, or saying the code is not valid "
                                   "(?promotion=refused, or missing when none was entered)"), **STUB_RESPONSES})
async def stub_promotion_code(session_id: str, request: Request, services: ServicesDep) -> Response:
    """The stub checkout's promotion code (CREDITDESK_PROMOTION_CODES and the catalogue's [[promotion_codes]]):
    the session's total goes down as Stripe's would; the credits stay the pack's."""
    session = await to_thread.run_sync(_promotion_form_target, services, session_id)
    if session is None or services.stub is None:
        return not_found(services)
    try:
        fields = urllib.parse.parse_qs((await request.body()).decode("utf-8", errors="replace"), max_num_fields=5)
    except ValueError:  # more fields than the form has: not the page's own form
        fields = {}
    entered = (fields.get("code") or [""])[0].strip()[:40]
    promotion = services.catalogue.promotion(entered)
    if promotion is None or session["status"] != "open":
        return _back_to_checkout(session_id, "refused" if entered else "missing")
    stub = services.stub
    await to_thread.run_sync(
        lambda: stub.apply_promotion(session_id, promotion.code, promotion.discount(int(session["amount_subtotal"]))))
    return _back_to_checkout(session_id)


@router.post("/stub/checkout/{session_id}/promotion-code/remove", status_code=303, response_class=RedirectResponse,
             responses={**redirect("Back to the checkout page, at the full price (?promotion=removed)"),
                        **STUB_RESPONSES})
async def stub_remove_promotion_code(session_id: str, services: ServicesDep) -> Response:
    """The stub checkout's "Remove" beside an applied promotion code: the session's total as without it."""
    session = await to_thread.run_sync(_promotion_form_target, services, session_id)
    stub = services.stub
    if session is None or stub is None:
        return not_found(services)
    await to_thread.run_sync(stub.remove_promotion, session_id)
    return _back_to_checkout(session_id, "removed")


@router.post("/stub/checkout/{session_id}/pay", status_code=303, response_class=RedirectResponse, responses={
    **redirect("Paid: on to the success URL"), **STUB_RESPONSES,
    410: {"description": "A page saying the checkout has expired", "content": HTML}})
async def stub_pay(session_id: str, request: Request, services: ServicesDep) -> Response:
    try:  # the card a session that saves one keeps for auto top-up (the page's "card"), else the one that succeeds
        fields = urllib.parse.parse_qs((await request.body()).decode("utf-8", errors="replace"), max_num_fields=5)
    except ValueError:
        fields = {}
    card = (fields.get("card") or ["succeeds"])[0][:20]
    return await to_thread.run_sync(_stub_pay, session_id, services, card)


def _stub_pay(session_id: str, services: Services, card: str) -> Response:
    session = _stub_session(services, session_id)
    if session is None or services.stub is None:
        return not_found(services)
    if session["status"] == "open":
        session = services.stub.pay(session_id, card)
        # As Stripe would: the completed event goes through the same handler as a real webhook.
        event = {"id": f"evt_stub_{session_id}", "object": "event", "type": "checkout.session.completed",
                 "livemode": False, "created": int(time.time()), "data": {"object": session}}
        webhooks.process_event(services.db, event, source="stub_checkout")
    if session["status"] == "expired":
        order = _stub_order(services, session_id)
        status = "cancelled" if order is not None and order.status == CANCELLED else "expired"
        title, message = MESSAGES[status]
        return page(services, "result.html", 410, title=title, message=message, order=None, outcome=status)
    target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
    return RedirectResponse(target, status_code=303, headers=NO_STORE)


@router.post("/stub/checkout/{session_id}/cancel", status_code=303, response_class=RedirectResponse, responses={
    **redirect("Cancelled: on to the cancel URL, which states the outcome"), **STUB_RESPONSES})
async def stub_cancel(session_id: str, services: ServicesDep) -> Response:
    """The stub checkout page's Cancel button: the customer's own POST, so the checkout is cancelled at once (as
    the cancel page's button does), then the browser goes on to the cancel URL, which shows the outcome."""
    session = await to_thread.run_sync(_stub_session, services, session_id)
    if session is None:
        return not_found(services)
    order = await to_thread.run_sync(_stub_order, services, session_id)
    if order is not None:
        try:
            order = await purchases.cancel_from_browser(services, order.id)
        except CreditdeskError as exc:
            return error_page(services, exc)
    done = _cancel_outcome(order) if order is not None else ""
    return RedirectResponse(session["cancel_url"] + (f"&done={done}" if done else ""), status_code=303,
                            headers=NO_STORE)


@dataclass(frozen=True)
class ShownPrice:
    """A price on a page: its text without JavaScript (``25.50 USD``, ``500 JPY``, ``5 ISK``), and the exact value
    and decimal places the page's script writes in the browser's locale (``$25.50`` in en-US), as the app does."""

    text: str
    value: str
    digits: int
    currency: str

    def __str__(self) -> str:
        return self.text


def shown_price(amount: int, currency: str) -> ShownPrice:
    """``amount`` in ``currency``'s minor unit, as Stripe counts it (:mod:`resources.currencies`)."""
    return ShownPrice(currencies.plain(amount, currency), f"{currencies.value(amount, currency)}",
                      currencies.digits(amount, currency), currency.upper())
