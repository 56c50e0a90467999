"""Webhooks: signed deliveries, redelivery, chosen order and duplicates, and dropping chosen deliveries."""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import http.client
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from .state import FakeStripeState, Rule


class WebhookDrop(Rule):
    """A rule that keeps matching automatic deliveries from being received (see ``drop_webhooks``).

    ``dropped`` lists the ids of the events it caught. Use it as a context manager, or ``cancel()`` it.
    """

    def __init__(
        self,
        owner: WebhooksMixin,
        types: tuple[str, ...] | None,
        count: int | None,
        for_seconds: float | None,
        wrong_secret: bool,
    ) -> None:
        self.types = types
        self.wrong_secret = wrong_secret
        self.dropped: list[str] = []
        super().__init__(owner._drops, owner._lock, count, for_seconds)

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether the rule is active and catches ``event``."""
        if not self.active:
            return False
        return self.types is None or any(fnmatch.fnmatchcase(event["type"], t) for t in self.types)


class WebhooksMixin(FakeStripeState):
    """Signing and delivering events to ``webhook_url``, as Stripe does, with ways to make it fail."""

    # ---- signing ----------------------------------------------------------------------------------

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

    # ---- explicit deliveries (the test is Stripe's delivery system) -------------------------------

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
        Drop rules do not apply: this is a delivery the test asks for.
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

    def deliver_events(
        self, events: Iterable[dict[str, Any]], *, times: int = 1, shuffle: int | None = None
    ) -> list[int]:
        """Deliver ``events`` one after another in the given order, each ``times`` times; the statuses.

        ``shuffle=<seed>`` delivers the same copies in a random order that the seed makes repeatable.
        """
        sequence = [event for event in events for _ in range(times)]
        if shuffle is not None:
            random.Random(shuffle).shuffle(sequence)
        return [self.deliver(event)[0] for event in sequence]

    def redeliver(self, event_id: str, *, times: int = 1) -> list[int]:
        """Send a stored event again, as the Dashboard's "Resend" does (drop rules do not apply)."""
        with self._lock:
            event = self.events.get(event_id)
        if event is None:
            raise KeyError(f"No such event: {event_id!r}")
        return self.deliver(event, times=times)

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

    # ---- dropping automatic deliveries -----------------------------------------------------------

    def drop_webhooks(
        self,
        types: str | Iterable[str] | None = None,
        *,
        count: int | None = None,
        for_seconds: float | None = None,
        wrong_secret: bool = False,
    ) -> WebhookDrop:
        """Keep Stripe's automatic deliveries from being received; the events stay in the Events API.

        ``types``: event types or patterns (``"refund.*"``), default all. ``count``: only the next that
        many matching deliveries. ``for_seconds``: only for that long. Neither: until cancelled (or
        ``stop_dropping()``). ``wrong_secret=True`` delivers them signed with another secret instead, as
        when the endpoint's secret is misconfigured, so the endpoint answers them 400. Explicit
        ``deliver``/``redeliver`` calls are never dropped.
        """
        chosen = (types,) if isinstance(types, str) else (tuple(types) if types is not None else None)
        return WebhookDrop(self, chosen, count, for_seconds, wrong_secret)

    def stop_dropping(self) -> None:
        """Cancel every drop rule."""
        with self._lock:
            self._drops.clear()

    def _send_automatically(self, event: dict[str, Any]) -> None:
        """Deliver as Stripe does by itself: subject to the drop rules; nothing without a webhook_url."""
        if self.webhook_url is None:
            return
        with self._lock:
            rule = next((rule for rule in self._drops if rule.matches(event)), None)
            if rule is not None:
                rule._use()
                rule.dropped.append(event["id"])
                self.dropped.append(event["id"])
        if rule is None:
            self.deliver(event)
        elif rule.wrong_secret:
            self.deliver(event, secret=f"{self.webhook_secret}_not_this_one")

    def _send(self, events: list[dict[str, Any]], deliver: bool) -> None:
        if deliver:
            for event in events:
                self._send_automatically(event)

    def _deliver_later(
        self, events: list[dict[str, Any]], delay: float = 0.0, *, after: threading.Event | None = None
    ) -> None:
        """Deliver from a background thread, ``delay`` seconds after ``after`` is set (if given)."""
        if not events or self.webhook_url is None:
            return

        def run() -> None:
            if after is not None:
                after.wait(timeout=self.webhook_timeout)
            if delay:
                time.sleep(delay)
            for event in events:
                self._send_automatically(event)

        thread = threading.Thread(target=run, name="fake-stripe-webhook", daemon=True)
        with self._lock:
            self._bg_threads.append(thread)
        thread.start()

    # ---- HTTP -------------------------------------------------------------------------------------

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
            if 200 <= status < 300:
                self._delivered_ok.add(event["id"])
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
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            # Like Stripe, a delivery cut off half-way (the server died while answering) is a failed one.
            return 0, "", repr(exc)
