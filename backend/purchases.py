"""Buying packs: starting a checkout, confirming a payment, cancelling. Plain functions the routes call.

They are coroutines because they wait on the payment provider (through :class:`ProviderGateway`,
off the server's threads); their database work runs in a worker thread.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from anyio import to_thread
from sqlalchemy import Connection, select, update

from backend import billing_details, fulfilment, ledger, orders
from backend.accounts import User
from backend.billing_details import BillingDetails
from backend.db import utcnow
from backend.errors import (
    InvalidReturnUrl,
    PaymentProcessing,
    PaymentProviderError,
    PaymentProviderUnavailable,
    SessionNotFound,
    UnknownPack,
    UnknownSession,
)
from backend.order_status import AFTER_PAYMENT, PENDING, SETTLED
from backend.orders import Order
from backend.payments.base import CheckoutRequest, SessionState
from backend.schema import users
from backend.services import Services

log = logging.getLogger("creditdesk.payments")


def check_return_url(url: str) -> str:
    """Accept only ``http://127.0.0.1:<port>/...`` or ``http://[::1]:<port>/...`` (the contract)."""
    invalid = InvalidReturnUrl(url)
    try:
        parts = urlsplit(url)
        port = parts.port
        host = ip_address(parts.hostname or "")
    except ValueError:
        raise invalid from None
    if (
        parts.scheme != "http" or port is None or not 0 < port < 65536 or parts.username is not None
        or parts.password is not None or not host.is_loopback or str(host) not in ("127.0.0.1", "::1")
        or parts.netloc not in (f"127.0.0.1:{port}", f"[::1]:{port}") or parts.fragment
    ):
        raise invalid
    return url


def with_query(url: str, **params: str | None) -> str:
    """``url`` with ``params`` added to its query (replacing any of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def start_checkout(
    services: Services, user: User, pack_id: str, return_url: str | None, state: str | None, *,
    save_card: bool = False,
) -> Order:
    pack = services.catalogue.get(pack_id)
    if pack is None:
        raise UnknownPack(pack_id)
    if return_url is not None:
        check_return_url(return_url)
    # Counted after validation: only requests that would create a Checkout Session use up the limit.
    services.limiter.hit(services.settings.checkout_limit_per_user, "checkout", str(user.id))
    order_id = "ord_" + secrets.token_hex(12)
    base = services.public_url
    try:
        customer_id = await _customer_of(services, user)
    except PaymentProviderError as exc:
        log.error("payment order=%s user=%s outcome=checkout_failed reason=%s", order_id, user.id, exc)
        raise
    request = CheckoutRequest(
        order_id=order_id, user_id=user.id, user_email=user.email, pack=pack, customer_id=customer_id,
        success_url=f"{base}/account/credits/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{base}/account/credits/cancel?order_id={order_id}",
        promotion_codes=services.settings.promotion_codes, automatic_tax=services.settings.automatic_tax,
        save_card=save_card,
    )
    try:
        created = await services.gateway.create_checkout(request)
    except PaymentProviderError as exc:
        log.error("payment order=%s user=%s outcome=checkout_failed reason=%s", order_id, user.id, exc)
        raise
    now = utcnow()
    order = Order(
        id=order_id, user_id=user.id, pack_id=pack.id, pack_name=pack.name, credits=pack.credits,
        amount=pack.amount, currency=pack.currency, provider=services.gateway.name, session_id=created.id,
        checkout_url=created.url, return_url=return_url, state=state, status=PENDING,
        payment_intent=None, amount_refunded=0, credits_clawed_back=0, created_at=now, updated_at=now,
    )
    await to_thread.run_sync(_insert_order, services, order)
    log.info("payment order=%s session=%s user=%s pack=%s outcome=checkout_created",
             order.id, created.id, user.id, pack.id)
    return order


async def _customer_of(services: Services, user: User) -> str:
    """The user's one customer at the provider, made at their first checkout and kept (``users.customer_id``):
    every Checkout Session after it names it, so that the buyer's details and receipts stay together."""
    known = await to_thread.run_sync(_stored_customer, services, user.id)
    if known is not None and services.provider.knows_customer(known):
        return known  # no call: the checkout's one call to the provider is its session's
    customer_id = await services.gateway.ensure_customer(user.id, user.email, known)
    if customer_id != known:
        await to_thread.run_sync(_store_customer, services, user.id, customer_id)
    return customer_id


async def save_billing_details(services: Services, user: User, details: BillingDetails) -> BillingDetails:
    """``PUT /api/billing/details``: the user's billing details for every receipt after this.

    Given to the user's customer at the provider first (in Stripe mode its invoices carry them; made now if the
    user has none yet), then kept: when Stripe cannot be reached or refuses the tax id nothing is kept, so that the
    receipts and Stripe's invoices never disagree. Giving the same details again changes nothing at Stripe."""
    services.limiter.hit(services.settings.checkout_limit_per_user, "billing_details", str(user.id))
    customer_id = await _customer_of(services, user)
    await services.gateway.update_customer(customer_id, details)
    await to_thread.run_sync(_save_details, services, user.id, details)
    log.info("billing user=%s outcome=details_saved tax_id=%s", user.id, details.tax_id_type or "none")
    return details


def _save_details(services: Services, user_id: int, details: BillingDetails) -> None:
    with services.db.transaction() as conn:
        billing_details.save(conn, user_id, details)


def read_billing_details(services: Services, user: User) -> BillingDetails:
    with services.db.read() as conn:
        return billing_details.read(conn, user.id) or BillingDetails()


def _stored_customer(services: Services, user_id: int) -> str | None:
    with services.db.read() as conn:
        return conn.execute(select(users.c.customer_id).where(users.c.id == user_id)).scalar()


def _store_customer(services: Services, user_id: int, customer_id: str) -> None:
    with services.db.transaction() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(customer_id=customer_id))


def _insert_order(services: Services, order: Order) -> None:
    with services.db.transaction() as conn:
        orders.insert(conn, order)


async def refresh(services: Services, order: Order, *, source: str) -> Order:
    """Ask the provider where an unsettled order's session stands and fulfil if it is paid.

    A settled order (paid or after, failed, expired, cancelled) is answered from the database: the
    provider's webhooks and reconcile still bring it any news."""
    if order.status in SETTLED:
        return order
    try:
        session = await services.gateway.retrieve_session(order.session_id)
    except SessionNotFound:
        log.error("payment order=%s session=%s outcome=session_missing_at_provider", order.id, order.session_id)
        return order
    return await to_thread.run_sync(_apply_session, services, session, order, source)


def _apply_session(services: Services, session: SessionState, order: Order, source: str) -> Order:
    with services.db.transaction() as conn:
        result = fulfilment.apply_session(conn, session, source=source)
    return result.order or order


@dataclass(frozen=True)
class Verification:
    order: Order
    balance: int

    def as_json(self) -> dict[str, object]:
        answer: dict[str, object] = {"sessionId": self.order.session_id, "status": self.order.status,
                                     "creditsGranted": self.order.credits_granted, "balance": self.balance}
        if self.order.status in AFTER_PAYMENT:
            answer["payment"] = self.order.payment_json()
        return answer


async def verify_payment(services: Services, user: User, session_id: str) -> Verification:
    services.limiter.hit(services.settings.verify_limit_per_user, "verify", str(user.id))
    order = await to_thread.run_sync(_order_by_session, services, session_id)
    if order is None or order.user_id != user.id:
        raise UnknownSession(session_id)
    order = await refresh(services, order, source="verify")
    balance = await to_thread.run_sync(_balance, services, user.id)
    return Verification(order, balance)


def _order_by_session(services: Services, session_id: str) -> Order | None:
    with services.db.read() as conn:
        return orders.by_session(conn, session_id)


def _balance(services: Services, user_id: int) -> int:
    with services.db.read() as conn:
        return ledger.balance(conn, user_id)


async def confirm_from_browser(services: Services, session_id: str) -> Order | None:
    """The success page: confirm server-side; ``None`` when the session is not ours."""
    order = await to_thread.run_sync(_order_by_session, services, session_id)
    if order is None:
        return None
    try:
        return await refresh(services, order, source="success_page")
    except PaymentProviderError:  # the page says the payment is still being confirmed
        return order


def orders_of_purchases(conn: Connection, user: User, session_ids: Iterable[str]) -> dict[str, Order]:
    """The user's orders behind purchase ledger entries (whose reference is the Checkout Session id)."""
    found = {}
    for session_id in set(session_ids):
        order = orders.by_session(conn, session_id)
        if order is not None and order.user_id == user.id:
            found[session_id] = order
    return found


async def cancel_checkout(services: Services, user: User, session_id: str) -> Order:
    """``POST /api/billing/cancel``: the app gives up a purchase. Once this returns, the session cannot be paid.

    Unlike the cancel page (where the customer's word comes first), the session is expired at the provider
    before the order changes: when the provider cannot be reached, nothing changes and
    :class:`PaymentProviderUnavailable` says to try again. A session found paid is fulfilled and the order
    answers ``paid``; a settled order (cancelled, expired, paid, ...) answers as it is.
    """
    order = await to_thread.run_sync(_order_by_session, services, session_id)
    if order is None or order.user_id != user.id:
        raise UnknownSession(session_id)
    if order.status in SETTLED:
        return order
    try:
        session = await services.gateway.expire_session(order.session_id)
    except PaymentProviderUnavailable:
        log.warning("payment order=%s outcome=cancel_unconfirmed source=cancel_api", order.id)
        raise
    except PaymentProviderError:  # refused (already paid or expired?): the session's own state decides
        session = await services.gateway.retrieve_session(order.session_id)
    if session.is_paid:
        return await to_thread.run_sync(_apply_session, services, session, order, "cancel_api")
    if session.status == "complete":  # paid with a delayed method, still clearing: it is the bank's now
        log.info("payment order=%s outcome=cancel_refused reason=payment_processing source=cancel_api", order.id)
        raise PaymentProcessing(order.session_id)
    if session.status == "open":
        raise PaymentProviderUnavailable("the provider did not close the checkout")
    cancelled = await to_thread.run_sync(_cancel, services, order.id, "cancel_api")
    log.info("payment order=%s session=%s user=%s source=cancel_api outcome=%s",
             order.id, order.session_id, order.user_id, cancelled.status if cancelled else None)
    return cancelled or order


async def cancel_from_browser(services: Services, order_id: str) -> Order | None:
    """The cancel page's button (a POST): the customer gives up the checkout. Expire the session so that it can
    no longer be paid, and mark the order cancelled.

    The session is expired first. A session the provider finds paid is fulfilled, and one completed with a
    payment still clearing (a bank debit) stays as it is: it can no longer be cancelled. When the provider
    cannot be reached the order is cancelled on the customer's word all the same; the session lapses by
    itself, and money wins if it is paid meanwhile (the order state machine). A settled order is answered as
    it is.
    """
    order = await to_thread.run_sync(_order_by_id, services, order_id)
    if order is None or order.status in SETTLED:
        return order
    session = await _expire_for_customer(services, order)
    if session is not None and session.is_paid:
        return await to_thread.run_sync(_apply_session, services, session, order, "cancel_page")
    if session is not None and session.status == "complete":
        log.info("payment order=%s outcome=cancel_refused reason=payment_processing source=cancel_page", order.id)
        return order
    return await to_thread.run_sync(_cancel, services, order_id) or order


async def _expire_for_customer(services: Services, order: Order) -> SessionState | None:
    """The session after asking the provider to expire it; None when the provider could not be reached."""
    session: SessionState | None = None
    try:
        session = await services.gateway.expire_session(order.session_id)
    except PaymentProviderUnavailable:
        log.warning("payment order=%s outcome=cancel_unconfirmed", order.id)
    except PaymentProviderError:  # refused (already paid or expired?): the session's own state decides
        try:
            session = await services.gateway.retrieve_session(order.session_id)
        except PaymentProviderError:
            log.warning("payment order=%s outcome=cancel_unconfirmed", order.id)
    return session


def _order_by_id(services: Services, order_id: str) -> Order | None:
    with services.db.read() as conn:
        return orders.by_id(conn, order_id)


async def order_to_cancel(services: Services, order_id: str) -> Order | None:
    """The order a cancel page is about, read only: the page asks before anything changes."""
    return await to_thread.run_sync(_order_by_id, services, order_id)


def _cancel(services: Services, order_id: str, source: str = "cancel_page") -> Order | None:
    with services.db.transaction() as conn:
        order = orders.by_id(conn, order_id, lock=True)
        if order is None:
            return None
        return fulfilment.mark_cancelled(conn, order, source=source).order
