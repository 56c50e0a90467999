"""A Stripe-compatible test server: Checkout Sessions, a hosted checkout page and signed webhooks.

The official ``stripe`` SDK is pointed at it with
``stripe.StripeClient(key, base_addresses={"api": fake.url})``. Objects are built from Stripe's published
fixtures (``stripe_fixtures.json`` beside this file, MIT licence in ``LICENSE-stripe-openapi.txt``) with
realistic values. Only the standard library is used.

API endpoints (form-encoded bodies, bracket notation, ``Authorization: Bearer <key>``):

* ``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions[/{id}[/line_items]]``,
  ``POST /v1/checkout/sessions/{id}/expire``
* ``GET /v1/payment_intents/{id}``, ``GET /v1/charges/{id}``, ``POST /v1/refunds``, ``GET /v1/refunds/{id}``,
  ``GET /v1/events[/{id}]``, ``GET /v1/prices/{id}``, ``GET /v1/products/{id}``

Hosted page (plays Stripe Checkout in a browser): ``GET /pay/{id}``, ``POST /pay/{id}/confirm``,
``POST /pay/{id}/cancel``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import hashlib
import hmac
import html
import json
import re
import secrets
import string
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

FIXTURES_PATH = Path(__file__).with_name("stripe_fixtures.json")
API_VERSION = "2026-10-28.endive"  # stripe-python 16.1's pinned API version
SESSION_LIFETIME = 24 * 3600
WEBHOOK_MODES = ("before_redirect", "after_redirect", "never")
AFTER_REDIRECT_DELAY = 0.3


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ZERO_DECIMAL_CURRENCIES = _words("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf")
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}

SESSION_CREATE_PARAMS = _words(
    "adaptive_pricing after_expiration allow_promotion_codes allowed_payment_method_types "
    "automatic_tax billing_address_collection branding_settings cancel_url client_reference_id "
    "consent_collection currency custom_fields custom_text customer customer_account "
    "customer_creation customer_email customer_update discounts excluded_payment_method_types "
    "expand expires_at integration_identifier invoice_creation line_items locale managed_payments "
    "metadata mode name_collection optional_items origin_context payment_intent_data "
    "payment_method_collection payment_method_configuration payment_method_data "
    "payment_method_options payment_method_types permissions phone_number_collection "
    "redirect_on_completion return_url saved_payment_method_options setup_intent_data "
    "shipping_address_collection shipping_options submit_type subscription_data success_url "
    "tax_id_collection ui_mode wallet_options"
)
LINE_ITEM_PARAMS = _words(
    "adjustable_quantity dynamic_tax_rates metadata price price_data quantity tax_rates"
)
PRICE_DATA_PARAMS = _words(
    "currency product product_data recurring tax_behavior unit_amount unit_amount_decimal"
)
PRODUCT_DATA_PARAMS = _words("description images metadata name tax_code tax_details unit_label")
REFUND_CREATE_PARAMS = _words(
    "amount charge currency customer expand instructions_email metadata origin payment_intent "
    "reason refund_application_fee reverse_transfer"
)
ID_ALPHABET = string.ascii_letters + string.digits


# --------------------------------------------------------------------------------------------------
# helpers


@functools.cache
def _fixtures() -> dict[str, dict[str, Any]]:
    return json.loads(FIXTURES_PATH.read_text(encoding="utf-8"))


def fixture(name: str) -> dict[str, Any]:
    """A fresh deep copy of Stripe's example object ``name`` (e.g. ``"checkout.session"``)."""
    return copy.deepcopy(_fixtures()[name])


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id such as ``pi_3Qx...``."""
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def decode_form(body: str) -> dict[str, Any]:
    """Decode Stripe's form encoding (``a[b][0][c]=1``, ``expand[]=x``) into nested dicts and lists.

    All leaf values stay strings, as on the wire. Raises ``ValueError`` on conflicting keys.
    """
    root: dict[str, Any] = {}
    for raw_key, value in urllib.parse.parse_qsl(body, keep_blank_values=True):
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", raw_key)
        if not match:
            raise ValueError(f"Invalid parameter name: {raw_key}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node: dict[str, Any] = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # `a[]=x` appends
                part = str(len(node))
                while part in node:
                    part = str(int(part) + 1)
            if last:
                if part in node:
                    if isinstance(node[part], dict):
                        raise ValueError(f"Invalid parameter name: {raw_key}")
                    continue  # Stripe keeps the first value of a repeated key
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(f"Invalid parameter name: {raw_key}")
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    """Turn dicts whose keys are all decimal indexes into lists, recursively."""
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def format_amount(amount: int, currency: str) -> str:
    """Format a minor-unit amount for display, e.g. ``format_amount(2500, "usd") == "$25.00"``."""
    currency = currency.lower()
    number = f"{amount:,}" if currency in ZERO_DECIMAL_CURRENCIES else f"{amount / 100:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"


def mask_key(key: str) -> str:
    """Stripe's way of naming a key in an error: prefix and last four characters only."""
    prefix_match = re.match(r"^(?:sk|rk|pk)_(?:test|live)_", key)
    prefix = prefix_match.group(0) if prefix_match else ""
    rest = key[len(prefix) :]
    if len(rest) <= 8:
        return prefix + "*" * len(rest)
    return prefix + "*" * (len(rest) - 4) + rest[-4:]


class Headers(dict[str, str]):
    """A plain dict of request headers whose lookups ignore case (``h["idempotency-key"]``)."""

    def _key(self, key: object) -> object:
        if isinstance(key, str):
            lowered = key.lower()
            for existing in dict.keys(self):
                if existing.lower() == lowered:
                    return existing
        return key

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, self._key(key))  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._key(key))

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        """Case-insensitive ``dict.get``."""
        return dict.get(self, self._key(key), default)  # type: ignore[call-overload]


class StripeError(Exception):
    """An API error answered in Stripe's shape: ``{"error": {"type", "message", "code"?, "param"?}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        """The JSON error body."""
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if request_id:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


def _missing(param: str) -> StripeError:
    return StripeError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def _unknown(param: str) -> StripeError:
    return StripeError(400, f"Received unknown parameter: {param}", code="parameter_unknown", param=param)


def _as_int(value: Any, param: str, *, minimum: int | None = None) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value.strip()):
        raise StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param)
    number = int(value)
    if minimum is not None and number < minimum:
        raise StripeError(
            400,
            f"This value must be greater than or equal to {minimum}.",
            code="parameter_invalid_integer",
            param=param,
        )
    return number


def _as_dict(value: Any, param: str) -> dict[str, Any]:
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise StripeError(400, "Invalid object", code="parameter_invalid_object", param=param)
    return value


def _as_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise StripeError(400, f"Invalid string: {param}", code="parameter_invalid_string", param=param)
    return value


def _check_keys(given: dict[str, Any], allowed: Iterable[str], prefix: str) -> None:
    for key in given:
        if key not in allowed:
            raise _unknown(f"{prefix}[{key}]" if prefix else key)


def _metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    data = _as_dict(value, param)
    if len(data) > 50:
        raise StripeError(400, "Metadata can have up to 50 keys.", param=param)
    result: dict[str, str] = {}
    for key, item in data.items():
        if len(key) > 40:
            raise StripeError(
                400, f"Metadata keys can have up to 40 characters ({key}).", param=f"{param}[{key}]"
            )
        if not isinstance(item, str):
            raise StripeError(400, "Invalid string", code="parameter_invalid_string", param=f"{param}[{key}]")
        if len(item) > 500:
            raise StripeError(400, "Metadata values can have up to 500 characters.", param=f"{param}[{key}]")
        if item != "":
            result[key] = item
    return result


# --------------------------------------------------------------------------------------------------
# the fake


class FakeStripe:
    """An in-process Stripe stand-in on ``http://127.0.0.1:<random port>``; see the module docstring.

    ``webhook_url`` is where events go (``None``: events are created but not delivered, except by an
    explicit ``deliver()``, which then raises). Helper methods (``pay``, ``expire``, ...) deliver
    synchronously; events caused by API calls (``POST .../expire``, ``POST /v1/refunds``) are delivered
    from a background thread after the API answer, as Stripe does (join with ``wait_deliveries``).
    """

    def __init__(
        self, *, api_key: str = "sk_test_creditdesk", webhook_secret: str = "whsec_test_creditdesk"
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.webhook_url: str | None = None
        self.webhook_mode: str = "before_redirect"
        self.webhook_timeout: float = 10.0
        #: seconds between the redirect and the delivery in "after_redirect" mode
        self.after_redirect_delay: float = AFTER_REDIRECT_DELAY
        #: what the hosted page's Pay button does: "paid" (card) or "async" (delayed method, unpaid)
        self.checkout_outcome: str = "paid"
        #: deliver events caused by API calls (expire, refunds) in the background
        self.deliver_api_events: bool = True
        #: pretty-printed like Stripe's own payloads, so verifying re-serialised JSON fails as it would live
        self.payload_indent: int | None = 2
        self.api_version = API_VERSION

        self.sessions: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.prices: dict[str, dict[str, Any]] = {}
        self.products: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.deliveries: list[tuple[str, int]] = []
        #: one entry per webhook POST: event_id, type, status, body (the endpoint's answer), error
        self.delivery_log: list[dict[str, Any]] = []
        #: tracebacks of unexpected exceptions inside the fake (answered as 500 api_error)
        self.errors: list[str] = []

        self._line_items: dict[str, list[dict[str, Any]]] = {}
        self._pi_data: dict[str, dict[str, Any]] = {}
        self._session_charge: dict[str, str] = {}
        self._idempotency: dict[str, tuple[str, int, bytes]] = {}
        self._failures: list[tuple[int, bool | None]] = []
        self._lock = threading.RLock()
        self._bg_threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

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
        handler = type("FakeStripeHandler", (_Handler,), {"fake": self})
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
        """Stop serving; waits briefly for background deliveries."""
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

    def fail_next(self, n: int = 1, status: int = 500, *, should_retry: bool | None = None) -> None:
        """Answer the next ``n`` API calls with an error of ``status`` in Stripe's shape.

        ``should_retry`` sets the ``Stripe-Should-Retry`` header the SDK obeys; by default the SDK
        retries 409/5xx only if the client was made with ``max_network_retries`` > 0.
        """
        with self._lock:
            self._failures.extend([(status, should_retry)] * n)

    # ---- catalogue --------------------------------------------------------------------------------

    def add_price(
        self, unit_amount: int, currency: str = "usd", *, name: str = "Credits", id: str | None = None
    ) -> dict[str, Any]:
        """Create an active one-time price (and its product) usable as ``line_items[i][price]``."""
        with self._lock:
            product = self._new_product(name)
            price = self._new_price(product["id"], unit_amount, currency, active=True, price_id=id)
            return copy.deepcopy(price)

    def _new_product(self, name: str, description: str | None = None) -> dict[str, Any]:
        now = int(time.time())
        product = fixture("product")
        product.update(
            id=new_id("prod_", 14),
            name=name,
            description=description,
            created=now,
            updated=now,
            default_price=None,
            images=[],
            marketing_features=[],
            metadata={},
            package_dimensions=None,
            shippable=None,
            type="service",
            url=None,
        )
        self.products[product["id"]] = product
        return product

    def _new_price(
        self, product_id: str, unit_amount: int, currency: str, *, active: bool, price_id: str | None = None
    ) -> dict[str, Any]:
        price = fixture("price")
        price.update(
            id=price_id or new_id("price_"),
            active=active,
            created=int(time.time()),
            currency=currency.lower(),
            custom_unit_amount=None,
            product=product_id,
            recurring=None,
            transform_quantity=None,
            type="one_time",
            unit_amount=unit_amount,
            unit_amount_decimal=str(unit_amount),
            metadata={},
        )
        self.prices[price["id"]] = price
        return price

    # ---- checkout sessions ------------------------------------------------------------------------

    def create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """Create a Checkout Session from decoded API params (what ``POST /v1/checkout/sessions`` does)."""
        with self._lock:
            return self._create_session(params)

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        for key in params:
            if key not in SESSION_CREATE_PARAMS:
                raise _unknown(key)
        for required in ("mode", "success_url"):
            if not params.get(required):
                raise _missing(required)
        mode = _as_str(params["mode"], "mode")
        if mode not in ("payment", "setup", "subscription"):
            raise StripeError(
                400,
                f"Invalid mode: must be one of payment, setup, or subscription ({mode!r} given)",
                code="parameter_invalid_string",
                param="mode",
            )
        if mode != "payment":
            raise StripeError(400, f"This test server only supports mode=payment, not {mode}.", param="mode")
        success_url = _as_str(params["success_url"], "success_url")
        cancel_url = _as_str(params["cancel_url"], "cancel_url") if params.get("cancel_url") else None
        for param, url in (("success_url", success_url), ("cancel_url", cancel_url)):
            if url is not None and not re.match(r"^https?://[^/\s]+", url):
                raise StripeError(400, "Not a valid URL", code="url_invalid", param=param)

        raw_items = params.get("line_items")
        if not raw_items:
            raise _missing("line_items")
        if not isinstance(raw_items, list):
            raise StripeError(400, "Invalid array", code="parameter_invalid_array", param="line_items")
        items = [self._line_item(raw, f"line_items[{i}]") for i, raw in enumerate(raw_items)]
        currencies = {item["currency"] for item in items}
        if params.get("currency"):
            currencies.add(_as_str(params["currency"], "currency").lower())
        if len(currencies) > 1:
            raise StripeError(
                400,
                "Checkout does not support multiple currencies on one session "
                f"({', '.join(sorted(currencies))}).",
                param="line_items",
            )
        currency = currencies.pop()
        total = sum(item["amount_total"] for item in items)
        if currency == "usd" and total < 50:
            raise StripeError(
                400,
                "The Checkout Session's total amount due must add up to at least $0.50 usd",
                param="line_items",
            )

        metadata = _metadata(params.get("metadata", {}))
        pi_data = _as_dict(params.get("payment_intent_data", {}), "payment_intent_data")
        pi_meta = _metadata(pi_data.get("metadata", {}), "payment_intent_data[metadata]")
        now = int(time.time())
        expires_at = now + SESSION_LIFETIME
        if params.get("expires_at"):
            expires_at = _as_int(params["expires_at"], "expires_at")
            if not now + 1800 - 5 <= expires_at <= now + SESSION_LIFETIME + 5:
                raise StripeError(
                    400,
                    "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
                    "Checkout Session creation.",
                    param="expires_at",
                )
        client_reference_id = params.get("client_reference_id") or None
        if client_reference_id is not None:
            client_reference_id = _as_str(client_reference_id, "client_reference_id")
            if len(client_reference_id) > 200:
                raise StripeError(
                    400, "client_reference_id can be at most 200 characters.", param="client_reference_id"
                )
        payment_method_types = params.get("payment_method_types") or ["card"]

        session_id = "cs_test_a1" + "".join(secrets.choice(ID_ALPHABET) for _ in range(56))
        session = fixture("checkout.session")
        session.update(
            id=session_id,
            object="checkout.session",
            adaptive_pricing={"enabled": False},
            after_expiration=None,
            allow_promotion_codes=None,
            amount_subtotal=total,
            amount_total=total,
            automatic_tax={"enabled": False, "liability": None, "provider": None, "status": None},
            billing_address_collection=params.get("billing_address_collection"),
            cancel_url=cancel_url,
            client_reference_id=client_reference_id,
            client_secret=None,
            collected_information=None,
            consent=None,
            consent_collection=None,
            created=now,
            currency=currency,
            currency_conversion=None,
            custom_fields=[],
            custom_text={
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },
            customer=params.get("customer") or None,
            customer_account=None,
            customer_creation=params.get("customer_creation")
            or ("if_required" if not params.get("customer") else None),
            customer_details=None,
            customer_email=params.get("customer_email") or None,
            discounts=[],
            expires_at=expires_at,
            integration_identifier=None,
            invoice=None,
            invoice_creation={
                "enabled": False,
                "invoice_data": {
                    "account_tax_ids": None,
                    "custom_fields": None,
                    "description": None,
                    "footer": None,
                    "issuer": None,
                    "metadata": {},
                    "rendering_options": None,
                },
            },
            livemode=False,
            locale=params.get("locale") or None,
            managed_payments={"enabled": False},
            metadata=metadata,
            mode=mode,
            origin_context=None,
            payment_intent=None,
            payment_link=None,
            payment_method_collection="if_required",
            payment_method_configuration_details=None,
            payment_method_options={},
            payment_method_types=payment_method_types,
            payment_status="unpaid",
            permissions=None,
            phone_number_collection={"enabled": False},
            recovered_from=None,
            saved_payment_method_options=None,
            setup_intent=None,
            shipping_address_collection=None,
            shipping_cost=None,
            shipping_options=[],
            status="open",
            submit_type=params.get("submit_type") or None,
            subscription=None,
            success_url=success_url,
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            ui_mode=params.get("ui_mode") or "hosted_page",
            url=f"{self.url}/pay/{session_id}",
            wallet_options=None,
        )
        self.sessions[session_id] = session
        self._line_items[session_id] = items
        self._pi_data[session_id] = {"metadata": pi_meta, "description": pi_data.get("description")}
        return session

    def _line_item(self, raw: Any, param: str) -> dict[str, Any]:
        item = _as_dict(raw, param)
        _check_keys(item, LINE_ITEM_PARAMS, param)
        if "quantity" not in item:
            raise _missing(f"{param}[quantity]")
        quantity = _as_int(item["quantity"], f"{param}[quantity]", minimum=1)
        if item.get("price"):
            price_id = _as_str(item["price"], f"{param}[price]")
            price = self.prices.get(price_id)
            if price is None:
                raise StripeError(
                    400, f"No such price: '{price_id}'", code="resource_missing", param=f"{param}[price]"
                )
            if not price["active"]:
                raise StripeError(
                    400, f"The price specified is inactive: '{price_id}'.", param=f"{param}[price]"
                )
        elif "price_data" in item:
            pd_param = f"{param}[price_data]"
            price_data = _as_dict(item["price_data"], pd_param)
            _check_keys(price_data, PRICE_DATA_PARAMS, pd_param)
            if not price_data.get("currency"):
                raise _missing(f"{pd_param}[currency]")
            if price_data.get("recurring"):
                raise StripeError(
                    400,
                    "You must be in `subscription` mode to use recurring prices.",
                    param=f"{pd_param}[recurring]",
                )
            if "unit_amount" not in price_data:
                raise _missing(f"{pd_param}[unit_amount]")
            unit_amount = _as_int(price_data["unit_amount"], f"{pd_param}[unit_amount]", minimum=0)
            if price_data.get("product"):
                product_id = _as_str(price_data["product"], f"{pd_param}[product]")
                if product_id not in self.products:
                    raise StripeError(
                        400,
                        f"No such product: '{product_id}'",
                        code="resource_missing",
                        param=f"{pd_param}[product]",
                    )
            elif "product_data" in price_data:
                prod_param = f"{pd_param}[product_data]"
                product_data = _as_dict(price_data["product_data"], prod_param)
                _check_keys(product_data, PRODUCT_DATA_PARAMS, prod_param)
                if not product_data.get("name"):
                    raise _missing(f"{prod_param}[name]")
                product = self._new_product(
                    _as_str(product_data["name"], f"{prod_param}[name]"), product_data.get("description")
                )
                product["metadata"] = _metadata(product_data.get("metadata", {}), f"{prod_param}[metadata]")
                product_id = product["id"]
            else:
                raise _missing(f"{pd_param}[product]")
            currency = _as_str(price_data["currency"], f"{pd_param}[currency]").lower()
            if not re.fullmatch(r"[a-z]{3}", currency):
                raise StripeError(400, f"Invalid currency: {currency}", param=f"{pd_param}[currency]")
            price = self._new_price(product_id, unit_amount, currency, active=False)
        else:
            raise StripeError(
                400, f"You must specify either `price` or `price_data` in {param}.", param=param
            )
        amount = price["unit_amount"] * quantity
        return {
            "id": new_id("li_"),
            "object": "item",
            "adjustable_quantity": None,
            "amount_discount": 0,
            "amount_subtotal": amount,
            "amount_tax": 0,
            "amount_total": amount,
            "currency": price["currency"],
            "description": self.products[price["product"]]["name"],
            "metadata": _metadata(item.get("metadata", {}), f"{param}[metadata]"),
            "price": copy.deepcopy(price),
            "quantity": quantity,
        }

    def line_items(self, session_id: str) -> list[dict[str, Any]]:
        """The session's line items (Stripe ``item`` objects)."""
        return copy.deepcopy(self._line_items[session_id])

    def _session(self, session_id: str) -> dict[str, Any]:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise KeyError(f"No such checkout.session: {session_id!r}") from None

    # ---- state changes (what the customer or Stripe does) -----------------------------------------

    def pay(self, session_id: str, *, deliver: bool = True) -> dict[str, Any]:
        """Complete the session with a card: paid, PaymentIntent + Charge; ``checkout.session.completed``."""
        return self._pay(session_id, ("succeeded", "succeeded", "paid"), deliver)

    def pay_async(self, session_id: str, *, deliver: bool = True) -> dict[str, Any]:
        """Complete with a delayed method (bank debit): unpaid, PaymentIntent processing."""
        return self._pay(session_id, ("processing", "pending", "unpaid"), deliver)

    def _pay(self, session_id: str, statuses: tuple[str, str, str], deliver: bool) -> dict[str, Any]:
        """Complete an open session; ``statuses`` are the PaymentIntent's, the Charge's and the session's."""
        intent_status, charge_status, payment_status = statuses
        with self._lock:
            session = self._open_session(session_id, "pay")
            pi = self._new_payment_intent(session, intent_status)
            charge = self._new_charge(session, pi, charge_status)
            pi["latest_charge"] = charge["id"]
            self._complete(session, pi, payment_status)
            event = self.make_event("checkout.session.completed", session)
        return self._maybe_deliver(event, deliver)

    def async_succeed(self, session_id: str, *, deliver: bool = True) -> dict[str, Any]:
        """The delayed payment clears: paid; ``checkout.session.async_payment_succeeded``."""
        with self._lock:
            session, pi, charge = self._processing(session_id)
            pi.update(status="succeeded", amount_received=pi["amount"], processing=None)
            charge.update(
                status="succeeded",
                paid=True,
                captured=True,
                amount_captured=charge["amount"],
                outcome=_outcome(approved=True),
            )
            session["payment_status"] = "paid"
            event = self.make_event("checkout.session.async_payment_succeeded", session)
        return self._maybe_deliver(event, deliver)

    def async_fail(self, session_id: str, *, deliver: bool = True) -> dict[str, Any]:
        """The delayed payment fails: stays unpaid; ``checkout.session.async_payment_failed``."""
        with self._lock:
            session, pi, charge = self._processing(session_id)
            message = "The customer's account has insufficient funds to cover this payment."
            pi.update(
                status="requires_payment_method",
                processing=None,
                last_payment_error={
                    "type": "invalid_request_error",
                    "code": "insufficient_funds",
                    "message": message,
                    "charge": charge["id"],
                    "decline_code": None,
                    "doc_url": "https://stripe.com/docs/error-codes/insufficient-funds",
                    "param": None,
                    "payment_method": None,
                },
            )
            charge.update(
                status="failed",
                paid=False,
                amount_captured=0,
                failure_code="insufficient_funds",
                failure_message=message,
                outcome=_outcome(approved=False),
            )
            event = self.make_event("checkout.session.async_payment_failed", session)
        return self._maybe_deliver(event, deliver)

    def expire(self, session_id: str, *, deliver: bool = True) -> dict[str, Any]:
        """The session lapses: status expired; ``checkout.session.expired``."""
        with self._lock:
            session = self._open_session(session_id, "expire")
            self._expire(session)
            event = self.make_event("checkout.session.expired", session)
        return self._maybe_deliver(event, deliver)

    def refund(self, session_id: str, amount: int | None = None, *, deliver: bool = True) -> dict[str, Any]:
        """Refund ``amount`` more (default: the rest) of a paid session; ``charge.refunded``."""
        with self._lock:
            session = self._session(session_id)
            charge_id = self._session_charge.get(session_id)
            if session["payment_status"] != "paid" or charge_id is None:
                raise ValueError(f"session {session_id} is not paid; nothing to refund")
            try:
                _, event = self._refund(self.charges[charge_id], amount, reason=None, metadata={})
            except StripeError as exc:
                raise ValueError(exc.message) from None
        return self._maybe_deliver(event, deliver)

    def _open_session(self, session_id: str, action: str) -> dict[str, Any]:
        session = self._session(session_id)
        if session["status"] != "open":
            raise ValueError(f"cannot {action} session {session_id}: its status is {session['status']}")
        return session

    def _processing(self, session_id: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        session = self._session(session_id)
        pi = self.payment_intents.get(session["payment_intent"] or "")
        if (
            session["status"] != "complete"
            or session["payment_status"] != "unpaid"
            or pi is None
            or (pi["status"] != "processing")
        ):
            raise ValueError(f"session {session_id} has no delayed payment in progress (use pay_async first)")
        return session, pi, self.charges[pi["latest_charge"]]

    def _complete(self, session: dict[str, Any], pi: dict[str, Any], payment_status: str) -> None:
        email = session["customer_email"] or "jenny.rosen@example.com"
        session.update(
            status="complete",
            payment_status=payment_status,
            payment_intent=pi["id"],
            url=None,
            collected_information={"business_name": None, "individual_name": None, "shipping_details": None},
            customer_details={
                "address": {
                    "city": None,
                    "country": "US",
                    "line1": None,
                    "line2": None,
                    "postal_code": "94103",
                    "state": None,
                },
                "business_name": None,
                "email": email,
                "individual_name": None,
                "name": "Jenny Rosen",
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
            },
        )

    def _expire(self, session: dict[str, Any]) -> None:
        session.update(status="expired", url=None)

    def _new_payment_intent(self, session: dict[str, Any], status: str) -> dict[str, Any]:
        pi = fixture("payment_intent")
        pi_id = new_id("pi_")
        extra = self._pi_data.get(session["id"], {})
        pi.update(
            id=pi_id,
            amount=session["amount_total"],
            amount_capturable=0,
            amount_received=session["amount_total"] if status == "succeeded" else 0,
            automatic_payment_methods=None,
            canceled_at=None,
            cancellation_reason=None,
            client_secret=f"{pi_id}_secret_{new_id('', 25)}",
            created=int(time.time()),
            currency=session["currency"],
            customer=session["customer"],
            description=extra.get("description"),
            last_payment_error=None,
            latest_charge=None,
            managed_payments={"enabled": False},
            metadata=dict(extra.get("metadata", {})),
            next_action=None,
            payment_method=new_id("pm_"),
            payment_method_configuration_details=None,
            payment_method_options={},
            payment_method_types=["us_bank_account"] if status == "processing" else ["card"],
            processing={"type": "us_bank_account"} if status == "processing" else None,
            shipping=None,
            status=status,
            transfer_data=None,
        )
        self.payment_intents[pi_id] = pi
        return pi

    def _new_charge(self, session: dict[str, Any], pi: dict[str, Any], status: str) -> dict[str, Any]:
        charge = fixture("charge")
        charge_id = new_id("ch_")
        succeeded = status == "succeeded"
        details = charge["payment_method_details"]
        if status == "pending":
            details = {
                "type": "us_bank_account",
                "us_bank_account": {
                    "account_holder_type": "individual",
                    "account_type": "checking",
                    "bank_name": "STRIPE TEST BANK",
                    "fingerprint": new_id("", 16),
                    "last4": "6789",
                    "mandate": None,
                    "payment_reference": None,
                    "routing_number": "110000000",
                },
            }
        else:
            card = details["card"]
            card.update(
                amount_authorized=pi["amount"],
                authorization_code="123456",
                exp_year=2030,
                fingerprint=new_id("", 16),
                installments=None,
                network_transaction_id=new_id("", 15),
                three_d_secure=None,
                wallet=None,
            )
            card["overcapture"] = {"maximum_amount_capturable": pi["amount"], "status": "unavailable"}
        charge.update(
            id=charge_id,
            amount=pi["amount"],
            amount_captured=pi["amount"] if succeeded else 0,
            amount_refunded=0,
            balance_transaction=new_id("txn_") if succeeded else None,
            billing_details={
                "address": {
                    "city": None,
                    "country": "US",
                    "line1": None,
                    "line2": None,
                    "postal_code": "94103",
                    "state": None,
                },
                "email": session["customer_email"] or "jenny.rosen@example.com",
                "name": "Jenny Rosen",
                "phone": None,
                "tax_id": None,
            },
            calculated_statement_descriptor="CREDITDESK",
            captured=True,
            created=int(time.time()),
            currency=pi["currency"],
            customer=pi["customer"],
            description=pi["description"],
            metadata=dict(pi["metadata"]),
            outcome=_outcome(approved=True) if succeeded else None,
            paid=succeeded,
            payment_intent=pi["id"],
            payment_method=pi["payment_method"],
            payment_method_details=details,
            receipt_email=None,
            receipt_url=f"{self.url}/receipts/{charge_id}",
            refunded=False,
            refunds={
                "object": "list",
                "data": [],
                "has_more": False,
                "url": f"/v1/charges/{charge_id}/refunds",
            },
            shipping=None,
            source=None,
            status=status,
            transfer_data=None,
        )
        self.charges[charge_id] = charge
        self._session_charge[session["id"]] = charge_id
        return charge

    def _refund(
        self,
        charge: dict[str, Any],
        amount: int | None,
        *,
        reason: str | None,
        metadata: dict[str, str],
        request: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        remaining = charge["amount"] - charge["amount_refunded"]
        if charge["status"] != "succeeded":
            raise StripeError(
                400,
                f"Charge {charge['id']} has not succeeded; it cannot be refunded.",
                code="charge_not_refundable",
            )
        if remaining <= 0:
            raise StripeError(
                400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
            )
        amount = remaining if amount is None else amount
        if amount <= 0:
            raise StripeError(
                400, "Refund amount must be positive.", code="parameter_invalid_integer", param="amount"
            )
        if amount > remaining:
            raise StripeError(
                400,
                f"Refund amount ({format_amount(amount, charge['currency'])}) is greater than unrefunded "
                f"amount on charge ({format_amount(remaining, charge['currency'])})",
                code="amount_too_large",
                param="amount",
            )
        refund = fixture("refund")
        refund.update(
            id=new_id("re_"),
            amount=amount,
            balance_transaction=new_id("txn_"),
            charge=charge["id"],
            created=int(time.time()),
            currency=charge["currency"],
            customer=charge["customer"],
            metadata=metadata,
            payment_intent=charge["payment_intent"],
            payment_method=charge["payment_method"],
            reason=reason,
            status="succeeded",
        )
        if charge["payment_method_details"]["type"] != "card":
            refund["destination_details"] = {
                "type": charge["payment_method_details"]["type"],
                charge["payment_method_details"]["type"]: {},
            }
        self.refunds[refund["id"]] = refund
        previous = {
            "amount_refunded": charge["amount_refunded"],
            "refunded": charge["refunded"],
            "refunds": copy.deepcopy(charge["refunds"]),
        }
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
        event = self.make_event("charge.refunded", charge, previous_attributes=previous, request=request)
        return refund, event

    # ---- events and webhooks ----------------------------------------------------------------------

    def make_event(
        self,
        type: str,
        obj: dict[str, Any],
        *,
        previous_attributes: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build (and remember) an event of ``type`` whose ``data.object`` is a snapshot of ``obj``."""
        event = fixture("event")
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous_attributes is not None:
            data["previous_attributes"] = copy.deepcopy(previous_attributes)
        event.update(
            id=new_id("evt_"),
            object="event",
            api_version=self.api_version,
            created=int(time.time()),
            data=data,
            livemode=False,
            pending_webhooks=1,
            request=request or {"id": None, "idempotency_key": None},
            type=type,
        )
        with self._lock:
            self.events[event["id"]] = event
        return event

    def payload(self, event: dict[str, Any]) -> bytes:
        """The exact bytes POSTed for ``event`` (UTF-8 JSON, pretty-printed like Stripe's)."""
        return json.dumps(event, indent=self.payload_indent, ensure_ascii=False).encode("utf-8")

    def sign(self, payload: bytes | str, *, secret: str | None = None, timestamp: int | None = None) -> str:
        """A ``Stripe-Signature`` header value for ``payload``: ``t=<unix>,v1=<hex HMAC-SHA256>``."""
        body = payload.encode("utf-8") if isinstance(payload, str) else payload
        t = int(time.time()) if timestamp is None else int(timestamp)
        key = (self.webhook_secret if secret is None else secret).encode("utf-8")
        digest = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={t},v1={digest}"

    def deliver(
        self,
        event: dict[str, Any],
        *,
        times: int = 1,
        concurrency: int = 1,
        secret: str | None = None,
        timestamp: int | None = None,
    ) -> list[int]:
        """POST ``event`` (same signed bytes each time) ``times`` times; returns the statuses in order.

        With ``concurrency`` > 1, up to that many POSTs run at once from threads released together.
        A connection failure counts as status 0. ``secret``/``timestamp`` override the signature.
        """
        url = self.webhook_url
        if url is None:
            raise RuntimeError("FakeStripe.webhook_url is not set")
        body = self.payload(event)
        header = self.sign(body, secret=secret, timestamp=timestamp)
        if concurrency <= 1 or times <= 1:
            return [self._post_event(url, event, body, header) for _ in range(times)]
        statuses = [0] * times
        go = threading.Event()
        slots = threading.Semaphore(concurrency)

        def worker(index: int) -> None:
            go.wait()
            with slots:
                statuses[index] = self._post_event(url, event, body, header)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(times)]
        for thread in threads:
            thread.start()
        go.set()
        for thread in threads:
            thread.join(timeout=self.webhook_timeout * times + 5)
        return statuses

    def post_webhook(self, body: bytes, signature: str | None, *, url: str | None = None) -> int:
        """POST arbitrary bytes with an arbitrary (or no) ``Stripe-Signature``; returns the status."""
        status, _, _ = self._post(url or self.webhook_url or "", body, signature)
        return status

    def wait_deliveries(self, timeout: float = 5) -> None:
        """Join background deliveries (after_redirect mode, API-caused events); TimeoutError if still busy."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = [t for t in self._bg_threads if t.is_alive()]
                self._bg_threads = threads
            if not threads:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(threads)} webhook deliveries still running after {timeout}s")
            threads[0].join(timeout=remaining)

    def _maybe_deliver(self, event: dict[str, Any], deliver: bool) -> dict[str, Any]:
        if deliver and self.webhook_url is not None:
            self.deliver(event)
        return event

    def _deliver_later(self, events: list[dict[str, Any]], delay: float = 0.0) -> None:
        if not events or self.webhook_url is None:
            return

        def run() -> None:
            if delay:
                time.sleep(delay)
            for event in events:
                if self.webhook_url is not None:
                    self.deliver(event)

        thread = threading.Thread(target=run, name="fake-stripe-webhook", daemon=True)
        with self._lock:
            self._bg_threads.append(thread)
        thread.start()

    def _post_event(self, url: str, event: dict[str, Any], body: bytes, header: str) -> int:
        status, answer, error = self._post(url, body, header)
        with self._lock:
            self.deliveries.append((event["id"], status))
            self.delivery_log.append(
                {
                    "event_id": event["id"],
                    "type": event["type"],
                    "status": status,
                    "body": answer,
                    "error": error,
                }
            )
        return status

    def _post(self, url: str, body: bytes, signature: str | None) -> tuple[int, str, str | None]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Cache-Control": "no-cache",
            "Accept": "*/*; q=0.5, application/xml",
        }
        if signature is not None:
            headers["Stripe-Signature"] = signature
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an env proxy
        try:
            with opener.open(request, timeout=self.webhook_timeout) as response:
                return response.status, response.read().decode("utf-8", "replace"), None
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace"), None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return 0, "", repr(exc)

    # ---- API dispatch -----------------------------------------------------------------------------

    def _lookup(self, object_id: str) -> dict[str, Any] | None:
        for prefix, store in (
            ("cs_", self.sessions),
            ("pi_", self.payment_intents),
            ("ch_", self.charges),
            ("re_", self.refunds),
            ("evt_", self.events),
            ("price_", self.prices),
            ("prod_", self.products),
        ):
            if object_id.startswith(prefix):
                return store.get(object_id)
        return None

    def _line_items_list(self, session_id: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"/v1/checkout/sessions/{session_id}/line_items"
        return _paginate(self._line_items.get(session_id, []), params or {}, url, newest_first=False)

    def _expand(self, obj: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        result = copy.deepcopy(obj)
        expand = params.get("expand") or []
        if isinstance(expand, str):
            expand = [expand]
        if not isinstance(expand, list):
            raise StripeError(400, "Invalid array", code="parameter_invalid_array", param="expand")
        for path in expand:
            self._expand_path(result, _as_str(path, "expand").split("."), path)
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
        if key not in obj:
            raise StripeError(400, f"This property cannot be expanded ({full}).", param="expand")
        value = obj[key]
        if isinstance(value, str):
            found = self._lookup(value)
            if found is None:
                raise StripeError(400, f"This property cannot be expanded ({full}).", param="expand")
            obj[key] = value = copy.deepcopy(found)
        if rest and isinstance(value, dict):
            self._expand_path(value, rest, full)

    def _routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            ("POST", r"/v1/checkout/sessions", self._api_create_session),
            ("GET", r"/v1/checkout/sessions", self._api_list_sessions),
            ("GET", r"/v1/checkout/sessions/(?P<id>[^/]+)", self._api_get_session),
            ("GET", r"/v1/checkout/sessions/(?P<id>[^/]+)/line_items", self._api_session_line_items),
            ("POST", r"/v1/checkout/sessions/(?P<id>[^/]+)/expire", self._api_expire_session),
            (
                "GET",
                r"/v1/payment_intents/(?P<id>[^/]+)",
                self._getter("payment_intent", self.payment_intents),
            ),
            ("GET", r"/v1/charges/(?P<id>[^/]+)", self._getter("charge", self.charges)),
            ("GET", r"/v1/refunds/(?P<id>[^/]+)", self._getter("refund", self.refunds)),
            ("POST", r"/v1/refunds", self._api_create_refund),
            ("GET", r"/v1/events/(?P<id>[^/]+)", self._getter("event", self.events)),
            ("GET", r"/v1/events", self._api_list_events),
            ("GET", r"/v1/prices/(?P<id>[^/]+)", self._getter("price", self.prices)),
            ("GET", r"/v1/products/(?P<id>[^/]+)", self._getter("product", self.products)),
        ]

    def _handle_api(
        self, method: str, path: str, params: dict[str, Any], headers: Headers, request_id: str
    ) -> tuple[int, dict[str, Any], dict[str, str], list[dict[str, Any]]]:
        """Answer one API request: (status, JSON body, extra headers, events to deliver afterwards)."""
        with self._lock:
            if self._failures:
                status, should_retry = self._failures.pop(0)
                error = _failure(status)
                if should_retry is not None:
                    error.headers["Stripe-Should-Retry"] = "true" if should_retry else "false"
                raise error
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
            obj = store.get(id)
            if obj is None:
                raise StripeError(404, f"No such {name}: '{id}'", code="resource_missing", param="id")
            return self._expand(obj, params), []

        return get

    def _api_create_session(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        session = self._create_session(params)
        return self._expand(session, params), []

    def _api_get_session(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        return self._expand(self._api_session(id), params), []

    def _api_session(self, session_id: str) -> dict[str, Any]:
        session = self.sessions.get(session_id)
        if session is None:
            raise StripeError(
                404, f"No such checkout.session: '{session_id}'", code="resource_missing", param="session"
            )
        return session

    def _api_session_line_items(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        self._api_session(id)
        return self._expand(self._line_items_list(id, params), params), []

    def _api_expire_session(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        session = self._api_session(id)
        if session["status"] != "open":
            raise StripeError(
                400,
                f"This Checkout Session is not in an expirable state (status: {session['status']}). "
                'Only Checkout Sessions with a status in ["open"] can be expired.',
                param="session",
            )
        self._expire(session)
        event = self.make_event("checkout.session.expired", session, request=request)
        return self._expand(session, params), [event]

    def _api_list_sessions(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        items = list(self.sessions.values())
        for field in ("payment_intent", "status", "customer", "client_reference_id"):
            if params.get(field):
                items = [s for s in items if s.get(field) == params[field]]
        return self._expand(_paginate(items, params, "/v1/checkout/sessions"), params), []

    def _api_list_events(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        items = list(self.events.values())
        if params.get("type"):
            pattern = re.escape(params["type"]).replace(r"\*", ".*")
            items = [e for e in items if re.fullmatch(pattern, e["type"])]
        return _paginate(items, params, "/v1/events"), []

    def _api_create_refund(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        _check_keys(params, REFUND_CREATE_PARAMS, "")
        charge: dict[str, Any] | None = None
        if params.get("charge"):
            charge = self.charges.get(params["charge"])
            if charge is None:
                raise StripeError(
                    400, f"No such charge: '{params['charge']}'", code="resource_missing", param="charge"
                )
        elif params.get("payment_intent"):
            pi = self.payment_intents.get(params["payment_intent"])
            if pi is None:
                raise StripeError(
                    400,
                    f"No such payment_intent: '{params['payment_intent']}'",
                    code="resource_missing",
                    param="payment_intent",
                )
            charge = self.charges.get(pi["latest_charge"] or "")
            if charge is None:
                raise StripeError(
                    400,
                    f"PaymentIntent {pi['id']} does not have a successful charge to refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
        else:
            raise StripeError(
                400,
                "One of the following params should be provided for this request: payment_intent or charge.",
                code="parameter_missing",
            )
        amount = _as_int(params["amount"], "amount") if params.get("amount") else None
        reason = params.get("reason") or None
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise StripeError(400, f"Invalid reason: {reason}", param="reason")
        refund, event = self._refund(
            charge, amount, reason=reason, metadata=_metadata(params.get("metadata", {})), request=request
        )
        return self._expand(refund, params), [event]

    # ---- hosted checkout page ---------------------------------------------------------------------

    def _page(self, session_id: str) -> tuple[int, str]:
        session = self.sessions.get(session_id)
        if session is None:
            return 404, _html_page(
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
        return 200, _html_page(f"Pay: {title}", body, session_id=session_id, status=status)

    def _confirm(self, session_id: str) -> tuple[int, str, str | None]:
        """POST /pay/{id}/confirm: (status, html, redirect location)."""
        session = self.sessions.get(session_id)
        if session is None:
            return 404, _html_page("Checkout not found", "<p>This checkout link is not valid.</p>"), None
        if self.webhook_mode not in WEBHOOK_MODES:
            raise ValueError(f"webhook_mode must be one of {WEBHOOK_MODES}, not {self.webhook_mode!r}")
        success = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
        with self._lock:  # check and pay at once: a double-clicked Pay must not fail
            if session["status"] == "complete":
                return 303, "", success  # a resubmitted form: send the customer on again, as Stripe does
            if session["status"] != "open":
                page = _html_page("Checkout expired", '<p id="status">This checkout session has expired.</p>')
                return 410, page, None
            if self.checkout_outcome == "async":
                event = self.pay_async(session_id, deliver=False)
            else:
                event = self.pay(session_id, deliver=False)
        if self.webhook_mode == "before_redirect":
            self._maybe_deliver(event, True)
        elif self.webhook_mode == "after_redirect":
            self._deliver_later([event], self.after_redirect_delay)
        return 303, "", success

    def _cancel(self, session_id: str) -> tuple[int, str, str | None]:
        session = self.sessions.get(session_id)
        if session is None:
            return 404, _html_page("Checkout not found", "<p>This checkout link is not valid.</p>"), None
        if session["cancel_url"]:
            return 303, "", session["cancel_url"]
        return 200, _html_page("Payment cancelled", '<p id="status">You cancelled the payment.</p>'), None


def _outcome(*, approved: bool) -> dict[str, Any]:
    outcome = fixture("charge")["outcome"]
    outcome.update(
        network_status="approved_by_network" if approved else "declined_by_network",
        reason=None if approved else "insufficient_funds",
        risk_level="normal",
        risk_score=20,
        seller_message="Payment complete."
        if approved
        else "The bank returned the decline code `insufficient_funds`.",
        type="authorized" if approved else "issuer_declined",
    )
    return outcome


def _failure(status: int) -> StripeError:
    if status == 402:
        return StripeError(402, "Your card was declined.", type="card_error", code="card_declined")
    if status == 404:
        return StripeError(404, "No such object.", code="resource_missing")
    if status == 409:
        return StripeError(
            409,
            "This object cannot be accessed right now because another API request or "
            "Stripe process is currently accessing it.",
            code="lock_timeout",
        )
    if status == 429:
        return StripeError(
            429,
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
    if status < 500:
        return StripeError(status, "Simulated request failure.")
    return StripeError(
        status, "An unknown error occurred (simulated by FakeStripe.fail_next).", type="api_error"
    )


def _paginate(
    items: list[dict[str, Any]], params: dict[str, Any], url: str, *, newest_first: bool = True
) -> dict[str, Any]:
    ordered = list(reversed(items)) if newest_first else list(items)
    limit = _as_int(params["limit"], "limit", minimum=1) if params.get("limit") else 10
    limit = min(limit, 100)
    if params.get("starting_after"):
        ids = [item["id"] for item in ordered]
        if params["starting_after"] not in ids:
            raise StripeError(
                400,
                f"No such object: '{params['starting_after']}'",
                code="resource_missing",
                param="starting_after",
            )
        ordered = ordered[ids.index(params["starting_after"]) + 1 :]
    page = ordered[:limit]
    return {"object": "list", "data": copy.deepcopy(page), "has_more": len(ordered) > limit, "url": url}


def _html_page(title: str, body: str, *, session_id: str = "", status: str = "") -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}"
        "button{font-size:1rem;padding:.5rem 1.5rem;margin:.5rem 0}.items{padding:0;list-style:none}"
        ".item{display:flex;justify-content:space-between;gap:1rem}</style></head>"
        f'<body data-session-id="{html.escape(session_id, quote=True)}" data-status="{html.escape(status)}">'
        f'<p class="brand">Test mode checkout</p><h1>{html.escape(title)}</h1>{body}</body></html>\n'
    )


class _Handler(BaseHTTPRequestHandler):
    """HTTP glue: decodes requests and hands them to the owning FakeStripe."""

    fake: ClassVar[FakeStripe]
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    server_version = "FakeStripe/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length > 0 else b""
        try:
            if parsed.path.startswith("/v1/"):
                self._api(method, urllib.parse.unquote(parsed.path), parsed.query, raw_body)
            else:
                self._hosted(method, parsed.path)
        except Exception:  # the fake must answer, not hang the client
            self.fake.errors.append(traceback.format_exc())
            self._send_json(
                500, StripeError(500, "Internal error in FakeStripe", type="api_error").body(), {}
            )

    def _api(self, method: str, path: str, query: str, raw_body: bytes) -> None:
        request_id = new_id("req_", 14)
        headers = Headers(self.headers.items())
        try:
            body_text = raw_body.decode("utf-8")
            params = decode_form(query) if method != "POST" else {}
            if method == "POST":
                params.update(decode_form(body_text))
        except (UnicodeDecodeError, ValueError) as exc:
            params = {}
            with self.fake._lock:
                self.fake.requests.append(
                    {"method": method, "path": path, "params": params, "headers": headers}
                )
            error = StripeError(400, f"Invalid request body: {exc}")
            self._send_json(400, error.body(request_id), {"Request-Id": request_id})
            return
        with self.fake._lock:
            self.fake.requests.append({"method": method, "path": path, "params": params, "headers": headers})
        extra = {
            "Request-Id": request_id,
            "Stripe-Version": headers.get("Stripe-Version") or self.fake.api_version,
        }
        if headers.get("Idempotency-Key") and method == "POST":
            extra["Idempotency-Key"] = headers["Idempotency-Key"]
        try:
            status, body, more, events = self.fake._handle_api(method, path, params, headers, request_id)
        except StripeError as error:
            self._send_json(error.status, error.body(request_id), {**extra, **error.headers})
            return
        self._send_json(status, body, {**extra, **more})
        if events and self.fake.deliver_api_events:
            self.fake._deliver_later(events)

    def _hosted(self, method: str, path: str) -> None:
        match = re.fullmatch(r"/pay/([^/]+)(?:/(confirm|cancel))?/?", path)
        if match is None:
            self._send_html(404, _html_page("Not found", "<p>Not found.</p>"))
            return
        session_id, action = urllib.parse.unquote(match.group(1)), match.group(2)
        if action is None and method == "GET":
            status, page = self.fake._page(session_id)
            self._send_html(status, page)
            return
        if action is None or method != "POST":
            self._send_html(
                405, _html_page("Method not allowed", "<p>Method not allowed.</p>"), {"Allow": "GET"}
            )
            return
        status, page, location = (self.fake._confirm if action == "confirm" else self.fake._cancel)(
            session_id
        )
        if location is not None:
            self._send(status, b"", "text/plain", {"Location": location})
        else:
            self._send_html(status, page)

    def _send_json(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = (json.dumps(body, indent=2) + "\n").encode("utf-8")
        self._send(status, data, "application/json", headers)

    def _send_html(self, status: int, page: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, page.encode("utf-8"), "text/html; charset=utf-8", headers or {})

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
