"""What the fake Stripe holds: its objects, settings, logs and clock, shared by every part of it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from .wire import API_VERSION, no_such

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from .faults import Fault
    from .webhooks import WebhookDrop

WEBHOOK_MODES = ("before_redirect", "after_redirect", "never")
AFTER_REDIRECT_DELAY = 0.3
#: which events a refund makes: Stripe's today ("both"), only refund.* ("refund"), only charge.* ("charge")
REFUND_EVENT_STYLES = ("both", "refund", "charge")
#: how long a hang with no ``delay`` lasts at most, so that a forgotten fault cannot stall the test run
HANG_LIMIT = 60.0


@dataclass
class StripeChange:
    """What one change at Stripe made: the object as it now is and the events, in the order Stripe made them."""

    object: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The changed object's id (``re_...``, ``dp_...``)."""
        return str(self.object["id"])

    @property
    def types(self) -> list[str]:
        """The events' types, in order."""
        return [event["type"] for event in self.events]

    def event(self, type: str) -> dict[str, Any]:
        """The one event of ``type``; KeyError if this change made none."""
        for event in self.events:
            if event["type"] == type:
                return event
        raise KeyError(f"this change made no {type} event (it made {', '.join(self.types) or 'none'})")


class Rule:
    """A test's standing order to the fake (a fault, a drop), for ``count`` uses or ``for_seconds``, or until
    cancelled. A context manager that cancels it on exit."""

    def __init__(self, rules: list[Any], lock: threading.RLock, count: int | None, for_seconds: float | None) -> None:
        self.remaining = count
        self.until = None if for_seconds is None else time.monotonic() + for_seconds
        self._rules = rules
        self._lock = lock
        with lock:
            rules.append(self)

    @property
    def active(self) -> bool:
        """Whether the rule still applies."""
        if self.remaining is not None and self.remaining <= 0:
            return False
        return self.until is None or time.monotonic() < self.until

    def _use(self) -> None:
        """Count one use (call with the lock held)."""
        if self.remaining is not None:
            self.remaining -= 1

    def cancel(self) -> None:
        """Withdraw the rule."""
        with self._lock:
            if self in self._rules:
                self._rules.remove(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()


class FakeStripeState:
    """The fake's state. Behaviour lives in the mixins that ``FakeStripe`` combines."""

    def __init__(
        self, *, api_key: str = "sk_test_creditdesk", webhook_secret: str = "whsec_test_creditdesk"
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.api_version = API_VERSION
        #: the API version events are rendered at (a webhook endpoint's or the account's), when not the fake's
        #: own: under Adaptive Pricing, before 2025-03-31.basil, a Checkout Session's amounts and currency were
        #: the customer's (``presentment_details``), and so they are in events rendered at such a version
        self.event_api_version: str | None = None
        self.webhook_endpoints: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        #: each customer's tax ids (``tax_id`` objects), oldest first
        self.tax_ids: dict[str, list[dict[str, Any]]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        #: new invoices are finalized (and paid) at once, with their links; False: drafts until finalize_invoice
        self.invoices_final: bool = True

        # ---- settings a test may change at any time
        self.webhook_url: str | None = None
        self.webhook_mode: str = "before_redirect"
        self.webhook_timeout: float = 10.0
        #: seconds between the redirect and the delivery in "after_redirect" mode
        self.after_redirect_delay: float = AFTER_REDIRECT_DELAY
        #: what the hosted page's Pay button does: "paid" (card) or "async" (delayed method, unpaid)
        self.checkout_outcome: str = "paid"
        #: deliver events caused by API calls (expire, refunds, disputes) in the background
        self.deliver_api_events: bool = True
        #: pretty-printed like Stripe's own payloads, so verifying re-serialised JSON fails as it would live
        self.payload_indent: int | None = 2
        #: which events refunds make, one of REFUND_EVENT_STYLES (helpers can override it per call)
        self.refund_events: str = "both"
        #: the status ``POST /v1/refunds`` gives a new refund: "succeeded", "pending" or "requires_action"
        self.api_refund_status: str = "succeeded"
        #: every event made while True is a live-mode one (``livemode: true``, its object's too), as if a
        #: live key's events reached a test endpoint; helpers also take ``livemode=True`` for one change
        self.livemode: bool = False
        #: the longest a hang fault without its own ``delay`` holds a request
        self.hang_limit: float = HANG_LIMIT

        # ---- Stripe's objects, by id
        self.sessions: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        # Saved cards (payment_intents.py): how each charges off session, and how a card saved from now on will.
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.saved_cards: dict[str, str] = {}
        self.saved_card_behaviour: str = "succeeds"
        self._card_errors: dict[str, Any] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.prices: dict[str, dict[str, Any]] = {}
        self.products: dict[str, dict[str, Any]] = {}
        #: promotion codes and tax rates a payment used (``create_promotion_code``, ``create_tax_rate``)
        self.promotion_codes: dict[str, dict[str, Any]] = {}
        self.tax_rates: dict[str, dict[str, Any]] = {}

        # ---- what happened, for assertions
        #: every API request: method, path, params, headers (faulted and hung ones too)
        self.requests: list[dict[str, Any]] = []
        #: (event id, status) per webhook POST; status 0 when the endpoint could not be reached
        self.deliveries: list[tuple[str, int]] = []
        #: one entry per webhook POST: event_id, type, status, body (the endpoint's answer), error
        self.delivery_log: list[dict[str, Any]] = []
        #: ids of events whose automatic delivery a drop rule skipped (they stay in the Events API)
        self.dropped: list[str] = []
        #: tracebacks of unexpected exceptions inside the fake (answered as 500 api_error)
        self.errors: list[str] = []

        # ---- internals
        self._clock_offset: float = 0.0
        self._event_seq: dict[str, int] = {}
        self._delivered_ok: set[str] = set()
        #: refunds made with livemode=True: their later events are live-mode ones too
        self._live_objects: set[str] = set()
        self._line_items: dict[str, list[dict[str, Any]]] = {}
        #: each paid session's ``total_details.breakdown`` (includable: answered only with expand[]=it)
        self._breakdowns: dict[str, dict[str, Any]] = {}
        self._pi_data: dict[str, dict[str, Any]] = {}
        self._session_charge: dict[str, str] = {}
        self._idempotency: dict[str, tuple[str, int, bytes]] = {}
        self._faults: list[Fault] = []
        self._hang_release = threading.Event()
        self._drops: list[WebhookDrop] = []
        self._lock = threading.RLock()
        self._bg_threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    # ---- the clock ---------------------------------------------------------------------------------

    def now(self) -> int:
        """Stripe's clock, in Unix seconds: what ``created`` fields and the Events API's 30 days go by."""
        return int(time.time() + self._clock_offset)

    def set_clock(self, when: float | None) -> None:
        """Set Stripe's clock to ``when`` (Unix seconds); ``None`` puts it back on the wall clock.

        Objects and events made meanwhile get ``created`` times from it, so setting it 31 days back, making
        events and setting it back makes events older than the Events API lists. Webhook signatures always
        use the wall clock, as the receiving endpoint checks them against its own.
        """
        self._clock_offset = 0.0 if when is None else when - time.time()

    def advance_clock(self, seconds: float) -> None:
        """Move Stripe's clock forward (or back, if negative): ages everything made so far."""
        self._clock_offset += seconds

    @staticmethod
    def _known(store: dict[str, dict[str, Any]], kind: str, object_id: str, param: str = "id") -> dict[str, Any]:
        """The object ``object_id`` of ``store``, or Stripe's 404 ``No such <kind>``."""
        found = store.get(object_id)
        if found is None:
            raise no_such(kind, object_id, param)
        return found

    def _lookup(self, object_id: str) -> dict[str, Any] | None:
        for prefix, store in (
            ("cs_", self.sessions),
            ("pi_", self.payment_intents),
            ("ch_", self.charges),
            ("re_", self.refunds),
            ("dp_", self.disputes),
            ("evt_", self.events),
            ("price_", self.prices),
            ("prod_", self.products),
            ("in_", self.invoices),
            ("cus_", self.customers),
            ("promo_", self.promotion_codes),
            ("txr_", self.tax_rates),
        ):
            if object_id.startswith(prefix):
                return store.get(object_id)
        return None
