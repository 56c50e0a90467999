"""The browser pages: Checkout's success and cancel URLs, and the stub checkout page."""

from __future__ import annotations

import time
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

import resources
from backend import purchases, webhooks
from backend.api.deps import ClientAddressDep, ServicesDep
from backend.api.errors import QUERY_ERRORS, RETRY_AFTER, STORAGE, answer_for, documented
from backend.errors import CreditdeskError, Retryable, SessionNotFound
from backend.orders import Order
from backend.services import Services

router = APIRouter()

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(resources.path("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

HTML = {"text/html": {"schema": {"type": "string"}}}
TO_THE_APP = {303: {"description": "On to the app's returnUrl, with session_id, state and status"}}
NOT_FOUND_PAGE = {404: {"description": "A page saying the checkout is not known", "content": HTML}}
RESULT_PAGE_RESPONSES = {
    **TO_THE_APP, **NOT_FOUND_PAGE, **documented(QUERY_ERRORS),
    429: {"description": "A page saying to try again later", "content": HTML, "headers": RETRY_AFTER},
    503: {"description": "A page saying to try again later", "content": HTML, "headers": RETRY_AFTER},
}
STUB_RESPONSES = {**NOT_FOUND_PAGE, **documented(QUERY_ERRORS, STORAGE)}

MESSAGES = {
    "paid": ("Payment received", "{credits} credits were added to your balance. You can close this tab."),
    "refunded": ("Payment refunded", "This payment was refunded."),
    "pending": ("Payment being confirmed",
                "We have not had the payment confirmed yet. Your credits appear as soon as it is."),
    "cancelled": ("Checkout cancelled", "Nothing was charged. You can close this tab."),
    "expired": ("Checkout expired", "This checkout has expired and nothing was charged."),
    "failed": ("Payment failed", "The payment did not go through and nothing was charged."),
}


def page(services: Services, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(stub=services.stub is not None, **context)
    return HTMLResponse(html, status_code=status_code, headers=NO_STORE)


def result_page(services: Services, order: Order) -> Response:
    if order.return_url:
        target = purchases.with_query(
            order.return_url, session_id=order.session_id, state=order.state, status=order.status
        )
        return RedirectResponse(target, status_code=303, headers=NO_STORE)
    title, message = MESSAGES.get(order.status, MESSAGES["pending"])
    return page(services, "result.html", title=title, message=message.format(credits=order.credits),
                order=order)


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
    return not_found(services) if order is None else result_page(services, order)


@router.get("/account/credits/cancel", response_class=HTMLResponse, responses=RESULT_PAGE_RESPONSES)
async def cancel(
    services: ServicesDep, address: ClientAddressDep, order_id: Annotated[str, Query(max_length=255)] = ""
) -> Response:
    try:
        limit_page_hits(services, address, "page-order", order_id)
        order = await purchases.cancel_from_browser(services, order_id) if order_id else None
    except CreditdeskError as exc:
        return error_page(services, exc)
    return not_found(services) if order is None else result_page(services, order)


def _stub_session(services: Services, session_id: str) -> dict[str, Any] | None:
    stub = services.stub
    if stub is None or len(session_id) > 255:
        return None
    try:
        return stub.session_object(session_id)
    except SessionNotFound:
        return None


@router.get("/stub/checkout/{session_id}", response_class=HTMLResponse, responses=STUB_RESPONSES)
def stub_checkout(session_id: str, services: ServicesDep) -> Response:
    session = _stub_session(services, session_id)
    if session is None:
        return not_found(services)
    item = session["line_items"][0]["price_data"]
    return page(services, "stub_checkout.html", session=session, product=item["product_data"],
                price=format_money(session["amount_total"], session["currency"]))


@router.post("/stub/checkout/{session_id}/pay", status_code=303, responses={
    **STUB_RESPONSES, 410: {"description": "A page saying the checkout has expired", "content": HTML}})
def stub_pay(session_id: str, services: ServicesDep) -> Response:
    session = _stub_session(services, session_id)
    if session is None or services.stub is None:
        return not_found(services)
    if session["status"] == "open":
        session = services.stub.pay(session_id)
        # As Stripe would: the completed event goes through the same handler as a real webhook.
        event = {"id": f"evt_stub_{session_id}", "object": "event", "type": "checkout.session.completed",
                 "livemode": False, "created": int(time.time()), "data": {"object": session}}
        webhooks.process_event(services.db, event, source="stub_checkout")
    if session["status"] == "expired":
        return page(services, "result.html", 410, title="Checkout expired",
                    message="This checkout has expired and nothing was charged.", order=None)
    target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
    return RedirectResponse(target, status_code=303, headers=NO_STORE)


@router.post("/stub/checkout/{session_id}/cancel", status_code=303, responses=STUB_RESPONSES)
def stub_cancel(session_id: str, services: ServicesDep) -> Response:
    session = _stub_session(services, session_id)
    if session is None:
        return not_found(services)
    return RedirectResponse(session["cancel_url"], status_code=303, headers=NO_STORE)


def format_money(amount: int, currency: str) -> str:
    """``2500, "usd"`` -> ``"25.00 USD"`` (the stub page's only use; zero-decimal currencies aside)."""
    zero_decimal = {"jpy", "krw", "vnd", "clp", "isk", "ugx", "xaf", "xof", "pyg", "rwf", "bif", "djf", "gnf",
                    "kmf", "mga", "vuv", "xpf"}
    if currency.lower() in zero_decimal:
        return f"{amount} {currency.upper()}"
    return f"{amount // 100}.{amount % 100:02d} {currency.upper()}"
