"""The hosted checkout page that plays Stripe Checkout in a browser: ``GET /pay/{id}``, Pay and Cancel."""

from __future__ import annotations

import html

from .state import WEBHOOK_MODES, FakeStripeState
from .wire import format_amount


class HostedPageMixin(FakeStripeState):
    """What a customer sees and clicks at the session's ``url``."""

    def _page(self, session_id: str) -> tuple[int, str]:
        session = self.sessions.get(session_id)
        if session is None:
            return 404, html_page(
                "Checkout not found", "<p>Something went wrong: this checkout link is not valid.</p>"
            )
        items = self._line_items.get(session_id, [])
        rows = "".join(
            f'<li class="item"><span class="name">{html.escape(item["description"])}</span>'
            f"{' x ' + str(item['quantity']) if item['quantity'] != 1 else ''} "
            f'<span class="amount">{html.escape(format_amount(item["amount_total"], item["currency"]))}</span></li>'
            for item in items
        )
        total = html.escape(format_amount(session["amount_total"] or 0, session["currency"] or "usd"))
        sid = html.escape(session_id, quote=True)
        summary = (
            f'<ul class="items">{rows}</ul><p class="total">Total due <strong id="total">{total}</strong></p>'
        )
        status = session["status"]
        if status == "open":
            body = (
                f"{summary}"
                f'<form method="post" action="/pay/{sid}/confirm"><button id="pay" type="submit">Pay {total}'
                "</button></form>"
                f'<form method="post" action="/pay/{sid}/cancel"><button id="cancel" type="submit">Cancel'
                "</button></form>"
            )
        elif status == "complete":
            body = f'{summary}<p id="status">This payment is already complete.</p>'
        else:
            body = f'{summary}<p id="status">This checkout session has expired.</p>'
        title = items[0]["description"] if items else "Checkout"
        return 200, html_page(f"Pay: {title}", body, session_id=session_id, status=status)

    def _confirm(self, session_id: str) -> tuple[int, str, str | None]:
        """POST /pay/{id}/confirm: (status, html, redirect location)."""
        session = self.sessions.get(session_id)
        if session is None:
            return 404, html_page("Checkout not found", "<p>This checkout link is not valid.</p>"), None
        if self.webhook_mode not in WEBHOOK_MODES:
            raise ValueError(f"webhook_mode must be one of {WEBHOOK_MODES}, not {self.webhook_mode!r}")
        success = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
        with self._lock:  # check and pay at once: a double-clicked Pay must not fail
            if session["status"] == "complete":
                return 303, "", success  # a resubmitted form: send the customer on again, as Stripe does
            if session["status"] != "open":
                page = html_page("Checkout expired", '<p id="status">This checkout session has expired.</p>')
                return 410, page, None
            if self.checkout_outcome == "async":
                event = self.pay_async(session_id, deliver=False)
            else:
                event = self.pay(session_id, deliver=False)
        if self.webhook_mode == "before_redirect":
            self._send([event], True)
        elif self.webhook_mode == "after_redirect":
            self._deliver_later([event], self.after_redirect_delay)
        return 303, "", success

    def _cancel(self, session_id: str) -> tuple[int, str, str | None]:
        session = self.sessions.get(session_id)
        if session is None:
            return 404, html_page("Checkout not found", "<p>This checkout link is not valid.</p>"), None
        if session["cancel_url"]:
            return 303, "", session["cancel_url"]
        return 200, html_page("Payment cancelled", '<p id="status">You cancelled the payment.</p>'), None



def html_page(title: str, body: str, *, session_id: str = "", status: str = "") -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}"
        "button{font-size:1rem;padding:.5rem 1.5rem;margin:.5rem 0}.items{padding:0;list-style:none}"
        ".item{display:flex;justify-content:space-between;gap:1rem}</style></head>"
        f'<body data-session-id="{html.escape(session_id, quote=True)}" data-status="{html.escape(status)}">'
        f'<p class="brand">Test mode checkout</p><h1>{html.escape(title)}</h1>{body}</body></html>\n'
    )

