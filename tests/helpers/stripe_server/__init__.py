"""A Stripe-compatible test server, ``FakeStripe``, for the real stripe SDK (API version 2026-10-28.endive).

Point the SDK at it with ``stripe.StripeClient(key, base_addresses={"api": fake.url})`` and the backend with
``STRIPE_API_BASE=fake.url``; set ``fake.webhook_url`` to where events go. Objects are built from Stripe's
published fixtures (``../stripe_fixtures.json``, MIT licence in ``../LICENSE-stripe-openapi.txt``).

API (form-encoded, ``Authorization: Bearer <key>``, ``Idempotency-Key`` honoured, ``expand[]`` works):
    checkout sessions: POST/GET ``/v1/checkout/sessions``, GET ``.../{id}``, ``.../{id}/line_items``,
        POST ``.../{id}/expire`` (a paid or expired session answers Stripe's 400)
    payment intents: POST ``/v1/payment_intents`` (a saved card charged off session: succeeded, a 402 card_error
        declined or authentication_required, or requires_action; see payment_intents.py), GET
        ``/v1/payment_methods/{id}``; a session paid with ``payment_intent_data[setup_future_usage]`` saves its card
        (``saved_card_behaviour``, ``saved_cards``)
    GET ``/v1/payment_intents/{id}``, ``/v1/charges/{id}`` (no ``refunds`` unless ``expand[]=refunds``),
        ``/v1/charges/{id}/refunds``, ``/v1/prices/{id}``, ``/v1/products/{id}``
    refunds: POST/GET ``/v1/refunds``, GET/POST ``/v1/refunds/{id}``, POST ``/v1/refunds/{id}/cancel``
    disputes: GET ``/v1/disputes``, GET/POST ``/v1/disputes/{id}``, POST ``/v1/disputes/{id}/close``
    customers: POST ``/v1/customers``, GET/POST ``/v1/customers/{id}``, their tax ids: GET/POST
        ``/v1/customers/{id}/tax_ids``, DELETE ``.../tax_ids/{id}``
    invoices: GET ``/v1/invoices/{id}``: made when a session with ``invoice_creation`` is paid (the session's
        ``invoice``), finalized at once (``invoices_final = False``: drafts until ``finalize_invoice``), their
        ``hosted_invoice_url`` and ``invoice_pdf`` served at ``/invoices/{id}`` and ``/invoices/{id}/pdf``;
        ``invoice_of(session)``
    webhook endpoints: POST/GET ``/v1/webhook_endpoints``, GET/POST/DELETE ``.../{id}`` (the secret only in the
        create answer)
    events: GET ``/v1/events`` (``type`` with ``*``, ``types[]``, ``created[gt|gte|lt|lte]``,
        ``delivery_success``, ``limit``, ``starting_after``, ``ending_before``; newest first; only the
        last 30 days by ``fake.now()``) and GET ``/v1/events/{id}``
Hosted checkout page: GET ``/pay/{id}``, POST ``/pay/{id}/confirm`` (Pay), POST ``/pay/{id}/cancel``.

What a test does as the customer, the bank or Stripe (``deliver=False`` makes events without sending):
    ``pay``, ``pay_async`` + ``async_succeed`` / ``async_fail``, ``expire``: one event each, returned
    ``create_refund(session, amount, status=, events=, currency=, livemode=)`` -> ``StripeChange``
        (``.object`` the refund, ``.events``, ``.event(type)``); ``settle_refund(refund_id, "succeeded" |
        "failed" | "canceled")``; ``refund(session, amount)`` -> its ``charge.refunded`` event;
        ``refunds_of(session)``. ``fake.refund_events`` (or ``events=``): "both" (refund.* and
        charge.*, Stripe's today), "refund" (only refund.*) or "charge" (only charge.*);
        ``fake.api_refund_status`` is the status ``POST /v1/refunds`` gives.
    ``open_dispute(session, amount, inquiry=, reason=, currency=, livemode=)``,
        ``update_dispute(id, status=, metadata=)``, ``close_dispute(id, "won" | "lost" |
        "warning_closed")``, ``disputes_of(session)`` -> ``StripeChange``; ``charge.dispute.created``,
        ``.updated``, ``.closed``, ``.funds_withdrawn``, ``.funds_reinstated`` as Stripe sends them
    ``make_event(type, obj, previous_attributes=, livemode=, store=)``: any event, kept in the Events API
        unless ``store=False``; ``fake.livemode = True`` makes every event live-mode until set back;
        ``fake.event_api_version`` renders events at another API version, and so does a webhook endpoint
        registered for ``webhook_url`` with its ``api_version``; ``adapt_price(session, currency, amount)``
        (Adaptive Pricing) gives a session ``presentment_details``, which a version before 2025-03-31 shows
        in its amounts, ``total_details`` and currency, with the session's own in ``currency_conversion``
    ``pay(session, discount=, tax=, promotion_code=, tax_rate=)``: a promotion code's discount and exclusive tax
        (all discounted: ``no_payment_required``, no PaymentIntent); ``promotion_code`` and ``tax_rate`` are ids from
        ``create_promotion_code(code)`` and ``create_tax_rate(display_name, percentage, ...)`` (else new ones). The
        session's ``discounts`` name the promotion code by id (``expand[]=discounts.promotion_code`` gives it
        whole); ``total_details.breakdown`` (its discounts and its taxes with their rates) is includable: there only
        with ``expand[]=total_details.breakdown``, never in an event
    the clock: ``now()``, ``set_clock(when | None)``, ``advance_clock(seconds)`` (``created`` times,
        the Events API's 30 days; webhook signatures keep the wall clock)

Webhooks (signed as Stripe signs them; ``sign``/``payload`` give the header and the exact bytes):
    ``deliver(event, times=, concurrency=, secret=, timestamp=)``, ``deliver_events(events, times=,
    shuffle=seed)`` (chosen order, duplicates), ``redeliver(event_id)``, ``post_webhook(bytes, header)``,
    ``wait_deliveries()`` (events an API call causes go out in the background, just after its answer);
    ``drop_webhooks(types, count=, for_seconds=, wrong_secret=)`` (a rule, also a
    context manager; every event stays in the Events API) and ``stop_dropping()``;
    ``webhook_mode`` for the hosted Pay button ("before_redirect", "after_redirect", "never").
    Records: ``deliveries``, ``delivery_log``, ``dropped``, ``events``.

Faults (issue 8), per path glob and method or global, at run time: ``fault("hang", delay=)`` (slow, or
    no answer until ``clear_faults()``, at most ``hang_limit`` s), ``fault("error", status=500 | 503 | 429
    | 400 ...)``, ``fault("list")`` / ``fault("html")`` (200 with the wrong body), each with ``count=`` /
    ``for_seconds=``; ``fail_next(n, status)``; ``clear_faults()``; ``calls(path_glob, method)`` counts
    the requests that reached the fake (``requests`` has them all).
"""

from .faults import FAULT_KINDS, Fault
from .server import FakeStripe
from .state import REFUND_EVENT_STYLES, WEBHOOK_MODES, StripeChange
from .webhooks import WebhookDrop
from .wire import API_VERSION, StripeError, decode_form, fixture, format_amount, new_id, stripe_statuses

__all__ = [
    "API_VERSION",
    "FAULT_KINDS",
    "REFUND_EVENT_STYLES",
    "WEBHOOK_MODES",
    "FakeStripe",
    "Fault",
    "StripeChange",
    "StripeError",
    "WebhookDrop",
    "decode_form",
    "fixture",
    "format_amount",
    "new_id",
    "stripe_statuses",
]
