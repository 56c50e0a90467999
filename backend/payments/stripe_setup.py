"""``creditdesk-backend stripe-setup``: the webhook endpoint Creditdesk needs, created once or checked.

As laravel/cashier's ``cashier:webhook``: the endpoint at ``{public URL}/api/webhooks/stripe`` with the
pinned API version (:data:`backend.payments.base.STRIPE_API_VERSION`) and exactly the event types the
webhook handles (:data:`backend.webhooks.HANDLED`). Stripe shows an endpoint's signing secret only in the
answer that creates it, so it is printed then, once; an existing endpoint is checked and what differs is
said (its API version cannot be changed: a new endpoint is needed).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from backend.payments.base import STRIPE_API_VERSION

WEBHOOK_PATH = "/api/webhooks/stripe"


@dataclass(frozen=True)
class Setup:
    endpoint_id: str
    url: str
    created: bool
    secret: str | None = None  # only when created
    problems: list[str] = field(default_factory=list)  # what differs in an existing endpoint


def endpoint_url(public_url: str) -> str:
    return public_url.rstrip("/") + WEBHOOK_PATH


def set_up(stripe: Any, public_url: str, events: Collection[str]) -> Setup:
    """Create the endpoint, or check the one there is. ``stripe`` is a StripeClient at the pinned version."""
    url = endpoint_url(public_url)
    wanted = sorted(events)
    for endpoint in stripe.v1.webhook_endpoints.list(params={"limit": 100}).auto_paging_iter():
        if endpoint.url == url:
            return Setup(endpoint.id, url, created=False, problems=differences(endpoint, wanted))
    created = stripe.v1.webhook_endpoints.create(params={
        "url": url, "api_version": STRIPE_API_VERSION, "enabled_events": wanted,
        "description": "Creditdesk: credit purchases, refunds and disputes",
    })
    return Setup(created.id, url, created=True, secret=created.secret)


def differences(endpoint: Any, wanted: list[str]) -> list[str]:
    problems = []
    if endpoint.api_version != STRIPE_API_VERSION:
        problems.append(f"its API version is {endpoint.api_version or 'the account default'}, not "
                        f"{STRIPE_API_VERSION}; an endpoint's version cannot be changed: delete it in the "
                        "Stripe dashboard and run stripe-setup again")
    enabled = set(endpoint.enabled_events or [])
    if "*" in enabled:
        problems.append("it sends every event type (*), not only the ones Creditdesk handles")
        enabled.discard("*")
    if missing := sorted(set(wanted) - enabled):
        problems.append(f"it does not send {', '.join(missing)}")
    if extra := sorted(enabled - set(wanted)):
        problems.append(f"it also sends {', '.join(extra)}, which Creditdesk ignores")
    if getattr(endpoint, "status", "enabled") != "enabled":
        problems.append(f"it is {endpoint.status}")
    return problems
