"""Prometheus metrics of the backend, through the official client library (prometheus_client).

Off unless ``CREDITDESK_METRICS_PORT`` is set: then :func:`serve` exposes them on a port of their own
(loopback unless ``CREDITDESK_METRICS_HOST`` says otherwise), apart from the public API, so that a proxy in
front of the API never publishes them. The counters are updated whether or not they are served: an
increment costs well under a microsecond.

What is counted, and where: requests by route and status (the API's middleware), webhook outcomes (the
webhook route, from what processing answered: ``granted``, ``clawed_back``, ``duplicate`` ...), ledger
grants and clawbacks in credits (the same outcomes), reconcile runs and their lag (``backend.reconcile``),
Stripe call latency and the circuit breaker's state (``backend.payments.gateway``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("creditdesk_http_requests", "HTTP requests answered, by route template and status code",
                   ["method", "route", "status"], registry=REGISTRY)
WEBHOOK_EVENTS = Counter("creditdesk_webhook_events", "Stripe events received, by what processing them did",
                         ["outcome"], registry=REGISTRY)
RECONCILE_RUNS = Counter("creditdesk_reconcile_runs", "Reconcile runs, by trigger and result",
                         ["trigger", "result"], registry=REGISTRY)
RECONCILE_LAST_FINISHED = Gauge("creditdesk_reconcile_last_finished_timestamp_seconds",
                                "When the last reconcile run of this process finished (Unix time)",
                                registry=REGISTRY)
RECONCILE_EVENTS_APPLIED = Counter("creditdesk_reconcile_events_applied",
                                   "Events that reconcile found missing and applied", registry=REGISTRY)
CREDITS = Counter("creditdesk_credits", "Credits granted by purchases, clawed back and given back by refunds "
                  "and disputes", ["movement"], registry=REGISTRY)
STRIPE_CALLS = Histogram("creditdesk_stripe_call_seconds", "Calls to the payment provider, by operation and result",
                         ["operation", "result"], registry=REGISTRY,
                         buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
BREAKER_OPEN = Gauge("creditdesk_stripe_breaker_open",
                     "1 while the circuit breaker in front of the payment provider is open", registry=REGISTRY)

_server_lock = threading.Lock()
_served: tuple[str, int] | None = None


# Each counter's child per label values, once looked up: ``labels()`` checks and converts its values and takes a
# lock each time (a few microseconds, three times a webhook), and hands back the same child for the same values.
_children: dict[tuple[Counter, tuple[str, ...]], Counter] = {}


def _child(counter: Counter, *values: str) -> Counter:
    child = _children.get((counter, values))
    if child is None:
        child = _children.setdefault((counter, values), counter.labels(*values))
    return child


def request_answered(method: str, route: str, status: int) -> None:
    _child(REQUESTS, method, route, str(status)).inc()


def webhook_processed(outcome: str) -> None:
    _child(WEBHOOK_EVENTS, outcome).inc()


def credits_moved(movement: str, credits: int) -> None:
    """``granted``, ``clawed_back`` or ``given_back``: how many credits (a positive number)."""
    _child(CREDITS, movement).inc(abs(credits))


def reconcile_finished(trigger: str, *, partial: bool, events_applied: int, finished_at: float) -> None:
    RECONCILE_RUNS.labels(trigger=trigger, result="partial" if partial else "complete").inc()
    RECONCILE_EVENTS_APPLIED.inc(events_applied)
    RECONCILE_LAST_FINISHED.set(finished_at)


def stripe_call(operation: str, seconds: float, result: str) -> None:
    STRIPE_CALLS.labels(operation=operation, result=result).observe(seconds)


def watch_breaker(is_open: Callable[[], bool]) -> None:
    """Read the breaker's state when scraped (no bookkeeping on the hot path)."""
    BREAKER_OPEN.set_function(lambda: 1.0 if is_open() else 0.0)


def serve(host: str, port: int) -> tuple[str, int]:
    """Expose the metrics on ``host:port`` (once per process); returns where they are served."""
    global _served
    with _server_lock:
        if _served is None:
            server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
            _served = (host, server.server_port)
        return _served
