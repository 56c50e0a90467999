"""Stripe Checkout through the official SDK's StripeClient."""

from __future__ import annotations

import logging

import stripe

from backend.payments.base import (
    CheckoutRequest,
    CreatedSession,
    ProviderError,
    SessionNotFound,
    SessionState,
    session_params,
)

log = logging.getLogger("creditdesk.payments")


class StripeProvider:
    name = "stripe"

    def __init__(self, secret_key: str, api_base: str | None = None) -> None:
        kwargs = {"base_addresses": {"api": api_base}} if api_base else {}
        self._client = stripe.StripeClient(secret_key, max_network_retries=2, **kwargs)  # type: ignore[arg-type]

    def create_checkout(self, request: CheckoutRequest) -> CreatedSession:
        try:
            # The order id as idempotency key: a retried create never makes a second session.
            session = self._client.v1.checkout.sessions.create(
                params=session_params(request),  # type: ignore[arg-type]
                options={"idempotency_key": f"checkout-{request.order_id}"},
            )
        except stripe.StripeError as exc:
            raise ProviderError(_describe(exc)) from exc
        if not session.url:
            raise ProviderError("Stripe answered a Checkout Session without a url")
        return CreatedSession(id=session.id, url=session.url)

    def retrieve_session(self, session_id: str) -> SessionState:
        try:
            session = self._client.v1.checkout.sessions.retrieve(session_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise SessionNotFound(session_id) from exc
            raise ProviderError(_describe(exc)) from exc
        except stripe.StripeError as exc:
            raise ProviderError(_describe(exc)) from exc
        return SessionState.from_stripe(session.to_dict())

    def expire_session(self, session_id: str) -> SessionState:
        try:
            session = self._client.v1.checkout.sessions.expire(session_id)
        except stripe.StripeError as exc:
            raise ProviderError(_describe(exc)) from exc
        return SessionState.from_stripe(session.to_dict())


def _describe(exc: stripe.StripeError) -> str:
    # user_message and code never carry the secret key; str(exc) may quote request details.
    kind = type(exc).__name__
    status = getattr(exc, "http_status", None)
    return f"Stripe {kind} (HTTP {status}, code {getattr(exc, 'code', None)})"
