"""Faults of Stripe's API on request (hangs, errors, wrong bodies), per path or for all, and call counts."""

from __future__ import annotations

import fnmatch
import json
import threading
from typing import Any, Literal

from .state import FakeStripeState, Rule
from .wire import StripeError, new_id

FAULT_KINDS = ("hang", "error", "list", "html", "endless", "page")

#: what a faulted request gets: None (answer normally), "close" (no answer at all) or an answer to send
FaultAnswer = None | Literal["close"] | tuple[int, bytes, str, dict[str, str]]

HTML_BODY = (
    "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>"
    "<body><h1>Welcome to nginx!</h1><p>If you see this page, the web server is working.</p></body></html>\n"
)


class Fault(Rule):
    """One fault rule (see ``FakeStripe.fault``). ``hits`` counts the requests it caught; ``cancel()``
    removes it without releasing requests it holds in a hang (``clear_faults`` does that)."""

    def __init__(
        self,
        owner: FaultsMixin,
        kind: str,
        *,
        path: str | None,
        method: str | None,
        status: int,
        delay: float | None,
        count: int | None,
        for_seconds: float | None,
        should_retry: bool | None,
        data: list[Any] | None = None,
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {kind!r}")
        self.kind = kind
        self.path = path
        self.method = method.upper() if method else None
        self.status = status
        self.delay = delay
        self.should_retry = should_retry
        self.data = data or []
        self.hits = 0
        super().__init__(owner._faults, owner._lock, count, for_seconds)

    def matches(self, method: str, path: str) -> bool:
        """Whether the rule is active and catches a request."""
        if not self.active or (self.method is not None and self.method != method):
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)


class FaultsMixin(FakeStripeState):
    """Make the API misbehave as Stripe, a proxy or a wrong ``STRIPE_API_BASE`` can, and count calls."""

    def fault(
        self,
        kind: str,
        *,
        path: str | None = None,
        method: str | None = None,
        status: int = 500,
        delay: float | None = None,
        count: int | None = None,
        for_seconds: float | None = None,
        should_retry: bool | None = None,
        data: list[Any] | None = None,
    ) -> Fault:
        """Make matching API requests fail in one of these ways, until ``clear_faults()``:

        * ``"hang"``: accept the request and answer nothing, for ``delay`` seconds and then answer as
          usual (a slow Stripe), or with no ``delay`` until ``clear_faults()`` (at most ``hang_limit``
          seconds) and then close the connection without an answer;
        * ``"error"``: answer ``status`` in Stripe's error shape (500/503 ``api_error``, 429
          ``rate_limit``, 400 ``invalid_request_error``, 402 ``card_error``, 409 ``lock_timeout``);
          ``should_retry`` sets the ``Stripe-Should-Retry`` header the SDK obeys;
        * ``"list"``: answer 200 with a list object, not the object asked for;
        * ``"html"``: answer 200 with an HTML page, as a web server at a wrong base URL would;
        * ``"endless"``: a list page that always says ``has_more`` (a broken pager), each with one new
          ``customer.created`` event, so that ``starting_after`` always names one;
        * ``"page"``: a list page of ``data`` as given, raw (objects Stripe would never send: an event whose id is
          an object, ``"data": null``), ``has_more`` false.

        ``path`` is a glob (``*`` matches anything, ``/`` too): ``"/v1/checkout/sessions/*"``; ``method``
        ``"GET"`` or ``"POST"``; neither means every API request. ``count`` limits the rule to that many
        requests, ``for_seconds`` to that long. The first matching rule, in the order made, applies.
        """
        return Fault(
            self,
            kind,
            path=path,
            method=method,
            status=status,
            delay=delay,
            count=count,
            for_seconds=for_seconds,
            should_retry=should_retry,
            data=data,
        )

    def fail_next(self, n: int = 1, status: int = 500, *, should_retry: bool | None = None) -> None:
        """Answer the next ``n`` API calls with an error of ``status`` in Stripe's shape.

        ``should_retry`` sets the ``Stripe-Should-Retry`` header the SDK obeys; by default the SDK
        retries 409/5xx only if the client was made with ``max_network_retries`` > 0.
        """
        if n > 0:
            self.fault("error", status=status, count=n, should_retry=should_retry)

    def clear_faults(self) -> None:
        """Remove every fault and release every hung request (they get no answer)."""
        with self._lock:
            self._faults.clear()
            release, self._hang_release = self._hang_release, threading.Event()
        release.set()

    def calls(self, path: str | None = None, method: str | None = None) -> int:
        """How many API requests reached the fake (faulted ones too), optionally only for a path glob/method."""
        with self._lock:
            return sum(
                1
                for request in self.requests
                if (path is None or fnmatch.fnmatchcase(request["path"], path))
                and (method is None or request["method"] == method.upper())
            )

    def _apply_fault(self, method: str, path: str, request_id: str) -> FaultAnswer:
        """Run the first matching fault for a request: wait if it hangs; what to answer, if anything."""
        with self._lock:
            rule = next((rule for rule in self._faults if rule.matches(method, path)), None)
            if rule is None:
                return None
            rule.hits += 1
            rule._use()
            release = self._hang_release
        if rule.kind == "hang":
            released = release.wait(rule.delay if rule.delay is not None else self.hang_limit)
            return None if rule.delay is not None and not released else "close"
        if rule.kind == "list":
            body = {"object": "list", "data": [], "has_more": False, "url": path}
            return 200, json.dumps(body, indent=2).encode(), "application/json", {"Request-Id": request_id}
        if rule.kind == "html":
            return 200, HTML_BODY.encode(), "text/html", {}
        if rule.kind in ("endless", "page"):
            data = rule.data if rule.kind == "page" else [{
                "id": new_id("evt_"), "object": "event", "type": "customer.created", "api_version": None,
                "created": int(self.now()), "livemode": False, "pending_webhooks": 0,
                "request": {"id": None, "idempotency_key": None},
                "data": {"object": {"id": new_id("cus_"), "object": "customer"}}}]
            body = {"object": "list", "data": data, "has_more": rule.kind == "endless", "url": path}
            return 200, json.dumps(body).encode(), "application/json", {"Request-Id": request_id}
        error = stripe_failure(rule.status)
        if rule.should_retry is not None:
            error.headers["Stripe-Should-Retry"] = "true" if rule.should_retry else "false"
        body = json.dumps(error.body(request_id), indent=2).encode()
        return error.status, body, "application/json", {"Request-Id": request_id, **error.headers}


def stripe_failure(status: int) -> StripeError:
    """The error Stripe answers with ``status``, in its shape."""
    messages: dict[int, tuple[str, str, str | None]] = {
        400: ("invalid_request_error", "This request cannot be completed (simulated by FakeStripe).", None),
        402: ("card_error", "Your card was declined.", "card_declined"),
        404: ("invalid_request_error", "No such object.", "resource_missing"),
        409: (
            "invalid_request_error",
            "This object cannot be accessed right now because another API request or Stripe process is "
            "currently accessing it.",
            "lock_timeout",
        ),
        429: (
            "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            "rate_limit",
        ),
    }
    if status in messages:
        type_, message, code = messages[status]
        return StripeError(status, message, type=type_, code=code)
    if status < 500:
        return StripeError(status, "Simulated request failure.")
    return StripeError(status, "An unknown error occurred (simulated by FakeStripe).", type="api_error")

