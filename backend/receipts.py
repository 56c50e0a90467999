"""Receipts: every paid purchase has one, which its buyer can open in a browser from the app or the outcome page.

A receipt link is ``{public_url}/receipts/{order_id}?key=...``: the key is an HMAC of the order id under a secret
the backend keeps in its database (``server_secrets``, made by migration 0008), so that the link works without
a sign-in, in any replica, and cannot be made up for another order. The receipt says who sold what to whom:
the seller (its name, address and tax id: CREDITDESK_SELLER_*), the buyer (email, and billing details as they were when
the order was paid), the pack and its credits, and as a tax document's lines: the list price, the discount (with its
promotion code where known), the net, the tax (with its rate where known) and the total paid; when, and the order's id.

In Stripe mode the receipt a list gives is Stripe's hosted invoice, with its PDF, once their links are known
(backend/invoices.py); until then, and in stub mode, the backend's own page.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from backend import billing_details
from backend.billing_details import BillingDetails
from backend.order_status import AFTER_PAYMENT
from backend.schema import ledger_entries, orders, server_secrets, users


@dataclass(frozen=True)
class Receipt:
    order_id: str
    session_id: str
    pack_id: str
    pack_name: str
    credits: int
    amount: int  # what was paid (the list price when the order did not record it, before 0005)
    currency: str
    tax: int
    discount: int
    paid_at: str  # when the credits were granted: the purchase entry's time
    status: str  # the order's status now (a receipt stays when a payment is refunded or disputed)
    buyer_email: str
    billing: BillingDetails | None = None  # the buyer's billing details when paid (none set then: None)
    invoice_url: str | None = None  # Stripe's hosted invoice, once known
    invoice_pdf: str | None = None
    list_price: int | None = None  # the pack's price when bought (None: the same as amount)
    promotion_code: str | None = None  # the code entered at checkout, where known
    tax_rate: str | None = None  # the tax's rate in percent ("19"), where known
    tax_name: str | None = None  # its name ("VAT"), where known

    @property
    def price(self) -> int:
        """The pack's list price."""
        return self.amount if self.list_price is None else self.list_price

    @property
    def net(self) -> int:
        """What was paid without its tax."""
        return self.amount - self.tax

    @property
    def tax_included(self) -> bool:
        """Whether the list price held the tax (an inclusive price): the price less the discount is what was paid."""
        return bool(self.tax) and self.price - self.discount == self.amount

    @property
    def tax_label(self) -> str:
        """The tax line's words: "VAT (19 %)", "Tax (19 %)", or "Tax" where the rate is not known."""
        name = self.tax_name or "Tax"
        return f"{name} ({self.tax_rate} %)" if self.tax_rate else name

    def as_json(self, link: str) -> dict[str, Any]:
        """As ``GET /api/billing/receipts`` lists it: ``url`` is Stripe's invoice where there is one, else ``link``
        (the backend's own page)."""
        return {"orderId": self.order_id, "sessionId": self.session_id, "packId": self.pack_id,
                "credits": self.credits, "amount": self.amount, "currency": self.currency, "tax": self.tax,
                "discount": self.discount, "paidAt": self.paid_at, "url": self.invoice_url or link,
                "invoicePdf": self.invoice_pdf if self.invoice_url else None}


def _query() -> Any:
    o, e = orders.c, ledger_entries.c
    return (select(o.id, o.session_id, o.pack_id, o.pack_name, o.credits, o.amount, o.amount_paid, o.currency,
                   o.amount_tax, o.amount_discount, e.created_at, o.status, users.c.email, o.billing_details,
                   o.invoice_url, o.invoice_pdf, o.promotion_code, o.tax_rate, o.tax_name)
            .join(ledger_entries, (e.user_id == o.user_id) & (e.type == "purchase") & (e.reference == o.session_id))
            .join(users, users.c.id == o.user_id)
            .where(o.status.in_(sorted(AFTER_PAYMENT))))


def _receipt(row: Any) -> Receipt:
    (order_id, session_id, pack_id, pack_name, credits, amount, paid, currency, tax, discount, paid_at, status,
     email, billing, invoice_url, invoice_pdf, promotion_code, tax_rate, tax_name) = row
    return Receipt(order_id, session_id, pack_id, pack_name or pack_id, credits,
                   paid if paid is not None else amount, currency, tax or 0, discount or 0, paid_at, status, email,
                   billing_details.from_snapshot(billing), invoice_url, invoice_pdf, amount, promotion_code, tax_rate,
                   tax_name)


def for_user(conn: Connection, user_id: int) -> list[Receipt]:
    """The user's receipts, newest first."""
    rows = conn.execute(_query().where(orders.c.user_id == user_id)
                        .order_by(ledger_entries.c.created_at.desc(), orders.c.id.desc())).all()
    return [_receipt(row) for row in rows]


def by_link(conn: Connection, order_id: str, key: str) -> Receipt | None:
    """The receipt a link opens, or None when the key is not that order's (or the order has no receipt): the
    same answer for both, so that a link says nothing of orders it was not made for."""
    if not key.isascii() or not _encodable(order_id) or not hmac.compare_digest(link_key(conn, order_id), key):
        return None  # (compare_digest takes ASCII text only; a lone surrogate is no order's id)
    row = conn.execute(_query().where(orders.c.id == order_id)).first()
    return _receipt(row) if row is not None else None


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def link(conn: Connection, public_url: str, order_id: str) -> str:
    return linker(conn, public_url)(order_id)


def linker(conn: Connection, public_url: str) -> Callable[[str], str]:
    """Makes receipt links with the secret read once (a list of receipts needs many)."""
    secret = _secret(conn)
    return lambda order_id: (f"{public_url}/receipts/{urllib.parse.quote(order_id, safe='')}"
                             f"?key={_key(secret, order_id)}")


def link_key(conn: Connection, order_id: str) -> str:
    return _key(_secret(conn), order_id)


def _secret(conn: Connection) -> str:
    return str(conn.execute(select(server_secrets.c.value).where(server_secrets.c.name == "receipt_links"))
               .scalar_one())


def _key(secret: str, order_id: str) -> str:
    return hmac.new(secret.encode(), order_id.encode(), hashlib.sha256).hexdigest()[:32]
