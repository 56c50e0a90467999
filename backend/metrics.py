"""Prometheus metrics of the backend, through the official client library (prometheus_client).

Off unless ``CREDITDESK_METRICS_PORT`` is set: then :func:`serve` exposes them on a port of their own
(loopback unless ``CREDITDESK_METRICS_HOST`` says otherwise), apart from the public API, so that a proxy in
front of the API never publishes them. Counting starts with :func:`enable` (``serve`` calls it at start-up,
before any request); a backend that serves no metrics counts nothing and never loads prometheus_client (1.3 MB
of an idle bundled backend; ``bench/backend_memory.py``), and each call below is then one test of a flag.

What is counted, and where: requests by route and status (the API's middleware), webhook outcomes (the
webhook route, from what processing answered: ``granted``, ``clawed_back``, ``duplicate`` ...), ledger
grants and clawbacks in credits (the same outcomes), reconcile runs and their lag (``backend.reconcile``),
Stripe call latency and the circuit breaker's state (``backend.payments.gateway``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class _Collectors:
    registry: CollectorRegistry
    requests: Counter
    webhook_events: Counter
    reconcile_runs: Counter
    reconcile_last_finished: Gauge
    reconcile_events_applied: Counter
    credits: Counter
    stripe_calls: Histogram
    breaker_open: Gauge


def _made() -> _Collectors:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry(auto_describe=True)
    return _Collectors(
        registry=registry,
        requests=Counter("creditdesk_http_requests", "HTTP requests answered, by route template and status code",
                         ["method", "route", "status"], registry=registry),
        webhook_events=Counter("creditdesk_webhook_events", "Stripe events received, by what processing them did",
                               ["outcome"], registry=registry),
        reconcile_runs=Counter("creditdesk_reconcile_runs", "Reconcile runs, by trigger and result",
                               ["trigger", "result"], registry=registry),
        reconcile_last_finished=Gauge("creditdesk_reconcile_last_finished_timestamp_seconds",
                                      "When the last reconcile run of this process finished (Unix time)",
                                      registry=registry),
        reconcile_events_applied=Counter("creditdesk_reconcile_events_applied",
                                         "Events that reconcile found missing and applied", registry=registry),
        credits=Counter("creditdesk_credits", "Credits granted by purchases, clawed back and given back by refunds "
                        "and disputes", ["movement"], registry=registry),
        stripe_calls=Histogram("creditdesk_stripe_call_seconds",
                               "Calls to the payment provider, by operation and result", ["operation", "result"],
                               registry=registry, buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)),
        breaker_open=Gauge("creditdesk_stripe_breaker_open",
                           "1 while the circuit breaker in front of the payment provider is open", registry=registry),
    )


_lock = threading.Lock()
_on: _Collectors | None = None  # set once counting is enabled
_breaker: Callable[[], bool] | None = None  # the breaker to read when scraped, whenever it was given
_served: tuple[str, int] | None = None

# Each counter's child per label values, once looked up: ``labels()`` checks and converts its values and takes a
# lock each time (a few microseconds, three times a webhook), and hands back the same child for the same values.
_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def enable() -> CollectorRegistry:
    """Start counting (once per process); the registry the metrics are in."""
    global _on
    with _lock:
        if _on is None:
            _on = _made()
            if _breaker is not None:
                _watch(_on, _breaker)
        return _on.registry


def _child(counter: Any, *values: str) -> Any:
    child = _children.get((counter, values))
    if child is None:
        child = _children.setdefault((counter, values), counter.labels(*values))
    return child


def request_answered(method: str, route: str, status: int) -> None:
    if _on is not None:
        _child(_on.requests, method, route, str(status)).inc()


def webhook_processed(outcome: str) -> None:
    if _on is not None:
        _child(_on.webhook_events, outcome).inc()


def credits_moved(movement: str, credits: int) -> None:
    """``granted``, ``clawed_back`` or ``given_back``: how many credits (a positive number)."""
    if _on is not None:
        _child(_on.credits, movement).inc(abs(credits))


def reconcile_finished(trigger: str, *, partial: bool, events_applied: int, finished_at: float) -> None:
    if _on is not None:
        _on.reconcile_runs.labels(trigger=trigger, result="partial" if partial else "complete").inc()
        _on.reconcile_events_applied.inc(events_applied)
        _on.reconcile_last_finished.set(finished_at)


def stripe_call(operation: str, seconds: float, result: str) -> None:
    if _on is not None:
        _on.stripe_calls.labels(operation=operation, result=result).observe(seconds)


def watch_breaker(is_open: Callable[[], bool]) -> None:
    """Read the breaker's state when scraped (no bookkeeping on the hot path); kept until counting is enabled."""
    global _breaker
    with _lock:
        _breaker = is_open
        if _on is not None:
            _watch(_on, is_open)


def _watch(on: _Collectors, is_open: Callable[[], bool]) -> None:
    on.breaker_open.set_function(lambda: 1.0 if is_open() else 0.0)


def serve(host: str, port: int) -> tuple[str, int]:
    """Count, and expose the metrics on ``host:port`` (once per process); returns where they are served."""
    global _served
    registry = enable()
    with _lock:
        if _served is None:
            from prometheus_client import start_http_server

            server, _thread = start_http_server(port, addr=host, registry=registry)
            _served = (host, server.server_port)
        return _served
