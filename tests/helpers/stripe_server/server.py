"""``FakeStripe`` itself: starting and stopping, routing API requests, authentication, idempotency, expansion."""

from __future__ import annotations

import base64
import contextlib
import copy
import hmac
import json
import re
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .checkout import CheckoutMixin
from .customers import CustomersMixin
from .disputes import DisputesMixin
from .endpoints import EndpointsMixin
from .events import EventsMixin
from .faults import FaultsMixin
from .handler import Handler
from .hosted_page import HostedPageMixin
from .invoices import InvoicesMixin
from .payment_intents import PaymentIntentsMixin
from .refunds import RefundsMixin
from .webhooks import WebhooksMixin
from .wire import Headers, StripeError, as_list, as_str, list_object, mask_key


class FakeStripe(
    CheckoutMixin, RefundsMixin, DisputesMixin, EventsMixin, WebhooksMixin, FaultsMixin, HostedPageMixin,
    EndpointsMixin, CustomersMixin, InvoicesMixin, PaymentIntentsMixin,
):
    """An in-process Stripe stand-in on ``http://127.0.0.1:<random port>``; see the package docstring.

    ``webhook_url`` is where events go (``None``: events are made but not delivered, except by an
    explicit ``deliver()``, which then raises). Helpers (``pay``, ``create_refund``, ...) deliver
    synchronously; events caused by API calls (``POST .../expire``, ``POST /v1/refunds``) are delivered
    from a background thread after the API answer, as Stripe does (join with ``wait_deliveries``).
    """

    # ---- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:<port>``."""
        if self._url is None:
            raise RuntimeError("FakeStripe is not started; call start() or use it as a context manager")
        return self._url

    def start(self) -> FakeStripe:
        """Bind 127.0.0.1 on a free port and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeStripe already started")
        handler = type("FakeStripeHandler", (Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-stripe", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (hung requests are let go); waits briefly for background deliveries."""
        self.clear_faults()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with contextlib.suppress(TimeoutError):
            self.wait_deliveries(timeout=2)

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- API dispatch -----------------------------------------------------------------------------

    def _routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        one = r"/(?P<id>[^/]+)"
        return [
            ("POST", r"/v1/checkout/sessions", self._api_create_session),
            ("GET", r"/v1/checkout/sessions", self._api_list_sessions),
            ("GET", rf"/v1/checkout/sessions{one}", self._api_get_session),
            ("GET", rf"/v1/checkout/sessions{one}/line_items", self._api_session_line_items),
            ("POST", rf"/v1/checkout/sessions{one}/expire", self._api_expire_session),
            ("GET", rf"/v1/payment_intents{one}", self._getter("payment_intent", self.payment_intents)),
            ("POST", r"/v1/payment_intents", self._api_create_payment_intent),
            ("GET", rf"/v1/payment_methods{one}", self._api_get_payment_method),
            ("GET", rf"/v1/charges{one}", self._getter("charge", self.charges)),
            ("GET", rf"/v1/charges{one}/refunds", self._api_charge_refunds),
            ("POST", r"/v1/refunds", self._api_create_refund),
            ("GET", r"/v1/refunds", self._api_list_refunds),
            ("GET", rf"/v1/refunds{one}", self._getter("refund", self.refunds)),
            ("POST", rf"/v1/refunds{one}", self._api_update_refund),
            ("POST", rf"/v1/refunds{one}/cancel", self._api_cancel_refund),
            ("GET", r"/v1/disputes", self._api_list_disputes),
            ("GET", rf"/v1/disputes{one}", self._getter("dispute", self.disputes)),
            ("POST", rf"/v1/disputes{one}", self._api_update_dispute),
            ("POST", rf"/v1/disputes{one}/close", self._api_close_dispute),
            ("GET", r"/v1/events", self._api_list_events),
            ("GET", rf"/v1/events{one}", self._api_get_event),
            ("POST", r"/v1/customers", self._api_create_customer),
            ("GET", rf"/v1/customers{one}", self._api_get_customer),
            ("POST", rf"/v1/customers{one}", self._api_update_customer),
            ("GET", rf"/v1/customers{one}/tax_ids", self._api_list_tax_ids),
            ("POST", rf"/v1/customers{one}/tax_ids", self._api_create_tax_id),
            ("DELETE", rf"/v1/customers{one}/tax_ids/(?P<tax_id>[^/]+)", self._api_delete_tax_id),
            ("GET", rf"/v1/invoices{one}", self._api_get_invoice),
            ("POST", r"/v1/webhook_endpoints", self._api_create_endpoint),
            ("GET", r"/v1/webhook_endpoints", self._api_list_endpoints),
            ("GET", rf"/v1/webhook_endpoints{one}", self._api_get_endpoint),
            ("POST", rf"/v1/webhook_endpoints{one}", self._api_update_endpoint),
            ("DELETE", rf"/v1/webhook_endpoints{one}", self._api_delete_endpoint),
            ("GET", rf"/v1/prices{one}", self._getter("price", self.prices)),
            ("GET", rf"/v1/products{one}", self._getter("product", self.products)),
        ]

    def _handle_api(
        self, method: str, path: str, params: dict[str, Any], headers: Headers, request_id: str
    ) -> tuple[int, dict[str, Any], dict[str, str], list[dict[str, Any]]]:
        """Answer one API request: (status, JSON body, extra headers, events to deliver afterwards)."""
        self._authenticate(headers)
        key = headers.get("Idempotency-Key") if method == "POST" else None
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        with self._lock:  # one request at a time: Stripe's object locks, simplified
            if key:
                cached = self._idempotency.get(key)
                if cached is not None:
                    if cached[0] != fingerprint:
                        raise StripeError(
                            400,
                            "Keys for idempotent requests can only be used with the same parameters they "
                            f"were first used with. Try using a key other than '{key}' if you meant to execute "
                            "a different request.",
                            type="idempotency_error",
                        )
                    return cached[1], json.loads(cached[2]), {"Idempotent-Replayed": "true"}, []
            for route_method, pattern, action in self._routes():
                match = re.fullmatch(pattern, path)
                if match is None or route_method != method:
                    continue
                request_info = {"id": request_id, "idempotency_key": key}
                body, events = action(params, request_info, **match.groupdict())
                if key:
                    self._idempotency[key] = (fingerprint, 200, json.dumps(body).encode())
                return 200, body, {}, events
        raise StripeError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can "
            "help at https://support.stripe.com/.",
        )

    def _authenticate(self, headers: Headers) -> None:
        auth = headers.get("Authorization") or ""
        key = ""
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        elif auth.lower().startswith("basic "):
            try:
                key = base64.b64decode(auth[6:].strip()).decode("utf-8").split(":", 1)[0]
            except ValueError:
                key = ""
        if not key:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise StripeError(401, f"Invalid API Key provided: {mask_key(key)}")

    def _getter(self, name: str, store: dict[str, dict[str, Any]]) -> Callable[..., Any]:
        def get(params: dict[str, Any], request: dict[str, Any], id: str) -> tuple[dict[str, Any], list[Any]]:
            return self._expand(self._known(store, name, id), params), []

        return get

    # ---- expansion --------------------------------------------------------------------------------

    def _expand(self, obj: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        result = copy.deepcopy(obj)
        for path in as_list(params.get("expand") or [], "expand"):
            self._expand_path(result, as_str(path, "expand").split("."), path)
        return result

    def _expand_path(self, obj: dict[str, Any], parts: list[str], full: str) -> None:
        key, rest = parts[0], parts[1:]
        if obj.get("object") == "list" and key == "data":
            for item in obj["data"]:
                if rest:
                    self._expand_path(item, rest, full)
            return
        if key == "line_items" and obj.get("object") == "checkout.session":
            obj["line_items"] = self._line_items_list(obj["id"])
            return
        if key == "refunds" and obj.get("object") == "charge":  # not on a charge unless expanded
            obj["refunds"] = list_object(self._charge_refunds(obj["id"]), {}, f"/v1/charges/{obj['id']}/refunds")
            return
        if key == "total_details" and rest[:1] == ["breakdown"] and obj.get("object") == "checkout.session":
            # Includable: in a session only when asked for (never in an event's), its tax rates whole.
            breakdown = copy.deepcopy(self._breakdowns.get(obj["id"], {"discounts": [], "taxes": []}))
            obj["total_details"]["breakdown"] = breakdown
            if rest[1:]:
                self._expand_path(breakdown, rest[1:], full)
            return
        if key not in obj:
            raise StripeError(400, f"This property cannot be expanded ({full}).", param="expand")
        value = obj[key]
        if isinstance(value, list) and rest:  # through an array, as Stripe does (discounts.promotion_code)
            for item in value:
                if isinstance(item, dict):
                    self._expand_path(item, rest, full)
            return
        if isinstance(value, str):
            found = self._lookup(value)
            if found is None:
                raise StripeError(400, f"This property cannot be expanded ({full}).", param="expand")
            obj[key] = value = copy.deepcopy(found)
        if rest and isinstance(value, dict):
            self._expand_path(value, rest, full)
