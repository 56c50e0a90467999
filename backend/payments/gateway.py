"""Calls to the payment provider on a request's path, kept from holding up anything else.

What does not need the provider must never wait on it. So every provider call made for a request
goes through one :class:`ProviderGateway`, which

* runs it on a small pool of its own threads, not the server's shared thread pool, so that calls
  hanging on a slow provider cannot starve sign-in, balances or webhooks; calls beyond the pool wait
  for a thread (a burst of checkouts is served, not refused), up to ``waiting`` of them, and a call
  beyond those is refused at once;
* gives up on it after ``deadline`` seconds, waiting included (the provider's client has its own,
  shorter, timeouts), and a call given up on before it started never starts;
* trips a circuit breaker (purgatory) after ``failure_threshold`` failures in a row, so that while
  the provider keeps failing, calls fail fast for ``open_seconds`` instead of each waiting out the
  timeouts; ``/api/health`` shows it;
* checks a Checkout Session single-flight and keeps the answer for ``session_ttl`` seconds, shared by
  ``verify-payment`` and the success page: sixty hits on one pending session make one call, not sixty.

Why purgatory and not pybreaker: pybreaker holds its lock for the whole guarded call, which would
serialise every Stripe call behind a hanging one (danielfm/pybreaker#3). The gateway runs on the
event loop, where purgatory's asyncio breaker needs no lock at all. It is imported at the first provider call,
not at start: purgatory imports redis-py whenever it is installed (for its Redis store, which we do not use),
some 15 MB an idle stub-mode backend has no use for (``bench/backend_memory.py``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from backend import metrics
from backend.billing_details import BillingDetails
from backend.errors import PaymentProviderUnavailable
from backend.payments.base import CheckoutRequest, CreatedSession, InvoiceLinks, PaymentProvider, SessionState

if TYPE_CHECKING:
    from purgatory import AsyncCircuitBreakerFactory

log = logging.getLogger("creditdesk.payments")

T = TypeVar("T")

CIRCUIT = "payment-provider"
AVAILABLE, UNAVAILABLE, RECOVERING = "available", "unavailable", "recovering"


class ProviderGateway:
    def __init__(
        self,
        provider: PaymentProvider,
        *,
        workers: int = 8,
        waiting: int = 64,
        deadline: float = 10.0,
        failure_threshold: int = 5,
        open_seconds: float = 30.0,
        session_ttl: float = 2.0,
    ) -> None:
        self.provider = provider
        self.name = provider.name
        self.deadline = deadline
        self.session_ttl = session_ttl
        self._capacity = workers + waiting
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"{provider.name}-calls")
        self._busy = 0  # calls submitted and not finished (running or waiting), including those given up on
        self._busy_lock = threading.Lock()
        self._failure_threshold = failure_threshold
        self._open_seconds = open_seconds
        self._breakers: AsyncCircuitBreakerFactory | None = None  # made at the first call (see the docstring)
        self._sessions: dict[str, tuple[float, SessionState]] = {}
        self._in_flight: dict[str, asyncio.Future[SessionState]] = {}
        self._state = AVAILABLE
        self._open_until = 0.0
        metrics.watch_breaker(lambda: self.health()["state"] == UNAVAILABLE)

    # --- the provider's operations ------------------------------------------------------------------

    async def create_checkout(self, request: CheckoutRequest) -> CreatedSession:
        return await self._call(self.provider.create_checkout, request)

    async def ensure_customer(self, user_id: int, email: str, known: str | None) -> str:
        return await self._call(self.provider.ensure_customer, user_id, email, known)

    async def invoice_links(self, invoice_id: str) -> InvoiceLinks | None:
        return await self._call(self.provider.invoice_links, invoice_id)

    async def update_customer(self, customer_id: str, details: BillingDetails) -> None:
        await self._call(self.provider.update_customer, customer_id, details)

    async def retrieve_session(self, session_id: str) -> SessionState:
        """The session as the provider sees it, at most ``session_ttl`` seconds old; one call at a time."""
        cached = self._sessions.get(session_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._in_flight.get(session_id)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(session_id))
            self._in_flight[session_id] = pending
            pending.add_done_callback(lambda _: self._in_flight.pop(session_id, None))
        # shield: a caller that goes away (a closed tab) does not cancel the check for the others.
        return await asyncio.shield(pending)

    async def expire_session(self, session_id: str) -> SessionState:
        self._sessions.pop(session_id, None)
        session = await self._call(self.provider.expire_session, session_id)
        self._remember(session)
        return session

    def forget(self, session_id: str) -> None:
        """Drop what is known of a session (a webhook changed it)."""
        self._sessions.pop(session_id, None)

    # --- state --------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """For ``/api/health``: ``available``, ``unavailable`` (failing fast) or ``recovering``."""
        now = time.time()
        if self._state == UNAVAILABLE and now >= self._open_until:
            return {"state": RECOVERING}
        if self._state == UNAVAILABLE:
            return {"state": UNAVAILABLE, "retryAfter": max(1, math.ceil(self._open_until - now))}
        return {"state": self._state}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- inside ---------------------------------------------------------------------------------------

    async def _fetch(self, session_id: str) -> SessionState:
        session = await self._call(self.provider.retrieve_session, session_id)
        self._remember(session)
        return session

    def _remember(self, session: SessionState) -> None:
        now = time.monotonic()
        if len(self._sessions) > 10_000:  # keep it small: only the last seconds' sessions matter
            self._sessions = {k: v for k, v in self._sessions.items() if v[0] > now}
        self._sessions[session.id] = (now + self.session_ttl, session)

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        started = time.perf_counter()
        try:
            result = await self._guarded(function, *args)
        except PaymentProviderUnavailable:
            metrics.stripe_call(function.__name__, time.perf_counter() - started, "unavailable")
            raise
        except Exception:
            metrics.stripe_call(function.__name__, time.perf_counter() - started, "refused")
            raise
        metrics.stripe_call(function.__name__, time.perf_counter() - started, "ok")
        return result

    async def _guarded(self, function: Callable[..., T], *args: Any) -> T:
        with self._busy_lock:
            if self._busy >= self._capacity:
                # Every thread is busy and as many calls wait already as could start before the deadline.
                # Refused before the breaker, which must count the provider's failures, not ours.
                raise PaymentProviderUnavailable("too many calls to the provider are waiting", retry_after=5)
            self._busy += 1
        submitted = False
        try:
            from purgatory.domain.model import OpenedState

            breaker = await self._breaker_factory().get_breaker(CIRCUIT)
            try:
                async with breaker:
                    future = self._executor.submit(function, *args)
                    submitted = True
                    future.add_done_callback(self._done)
                    try:
                        result = await asyncio.wait_for(asyncio.wrap_future(future), self.deadline)
                    except TimeoutError:
                        future.cancel()  # one still waiting for a thread never starts: no late checkout
                        raise PaymentProviderUnavailable(f"no answer within {self.deadline:g} s") from None
            except OpenedState as exc:
                self._opened(exc.opened_at)
                retry_after = max(1, math.ceil(self._open_until - time.time()))
                raise PaymentProviderUnavailable("failing fast: the provider keeps failing", retry_after) from None
            except PaymentProviderUnavailable:
                context = breaker.context
                if context.state == "opened" and context.opened_at is not None:
                    self._opened(context.opened_at)
                raise
        finally:
            if not submitted:
                self._done(None)
        if self._state != AVAILABLE:
            log.info("payment provider=%s outcome=provider_available", self.name)
        self._state = AVAILABLE
        return result

    def _breaker_factory(self) -> AsyncCircuitBreakerFactory:
        if self._breakers is None:
            from purgatory import AsyncCircuitBreakerFactory

            # Only a provider that is down counts: a refusal or an unknown session means it is up.
            self._breakers = AsyncCircuitBreakerFactory(
                default_threshold=self._failure_threshold, default_ttl=self._open_seconds,
                exclude=[(BaseException, lambda exc: not isinstance(exc, PaymentProviderUnavailable))],
            )
        return self._breakers

    def _opened(self, opened_at: float) -> None:
        until = opened_at + self._open_seconds
        if self._state != UNAVAILABLE or until != self._open_until:
            log.warning("payment provider=%s outcome=provider_unavailable failing_fast_for=%ds", self.name,
                        self._open_seconds)
        self._state, self._open_until = UNAVAILABLE, until

    def _done(self, _: object) -> None:
        with self._busy_lock:
            self._busy -= 1
