"""The webhook path's reading of a Checkout Session event rendered at another API version than the pinned one,
in process on both engines: the session is decided on as Stripe has it now at the pinned version (Adaptive
Pricing showed older versions the customer's currency and amounts); Stripe unreachable then changes nothing
and raises, for the delivery to be retried."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from backend import webhooks
from backend.db import Database
from backend.errors import MalformedEvent, PaymentProviderUnavailable, RefusedEvent, SessionNotFound
from backend.payments.base import STRIPE_API_VERSION, SessionState
from backend.schema import webhook_events
from tests.helpers.payments import Purchase, new_order, session_event

OLD = "2024-06-20"  # before 2025-03-31.basil: Adaptive Pricing sessions in the customer's currency


def _now(p: Purchase, **changes: Any) -> dict[str, Any]:
    """The session as Stripe renders it at the pinned version: the pack's 2,500 cents less 833 off, 213 tax."""
    event = session_event(p, **changes)
    obj = event["data"]["object"]
    obj.update(amount_total=1880, total_details={"amount_discount": 833, "amount_shipping": 0, "amount_tax": 213},
               adaptive_pricing={"enabled": True},
               presentment_details={"presentment_amount": 1731, "presentment_currency": "eur"})
    event["api_version"] = STRIPE_API_VERSION
    return event


def _as_old(event: dict[str, Any]) -> dict[str, Any]:
    """The same event rendered at an older version: amounts, total_details and currency in euros."""
    old = {**event, "api_version": OLD, "data": {"object": dict(event["data"]["object"])}}
    obj = old["data"]["object"]
    obj.pop("presentment_details")
    obj.update(currency="eur", amount_subtotal=2301, amount_total=1731,
               total_details={"amount_discount": 767, "amount_shipping": 0, "amount_tax": 196},
               currency_conversion={"amount_subtotal": 2500, "amount_total": 1880, "fx_rate": "0.9208",
                                    "source_currency": "usd"})
    return old


class Sessions:
    """The provider's retrieve_session, as the webhook is given it: answers ``now``, or raises ``error``."""

    def __init__(self, now: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        self.now, self.error, self.asked = now, error, [] if now or error else None

    def __call__(self, session_id: str) -> SessionState:
        if self.asked is None:
            raise AssertionError("Stripe was asked for a session the event had at the pinned version")
        self.asked.append(session_id)
        if self.error is not None:
            raise self.error
        assert self.now is not None
        return SessionState.from_stripe(self.now["data"]["object"])


def _kept(db: Database) -> int:
    with db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(webhook_events)).scalar_one()


def test_an_older_event_is_decided_on_the_session_at_the_pinned_version(db: Database) -> None:
    p = new_order(db, credits=550, amount=2500)
    now = _now(p)
    sessions = Sessions(now)
    outcome = webhooks.process_event(db, _as_old(now), sessions=sessions).outcome
    assert (outcome, sessions.asked) == ("granted", [p.session_id])
    order = p.order()
    assert p.balance() == 550 and order.currency == "usd"
    assert (order.amount_paid, order.amount_discount, order.amount_tax) == (1880, 833, 213)  # dollars, not euros


def test_an_older_event_without_a_provider_to_ask_is_judged_as_it_came(db: Database) -> None:
    p = new_order(db, credits=550, amount=2500)
    assert webhooks.process_event(db, _as_old(_now(p))).outcome == "refused"
    assert p.balance() == 0
    assert p.order().refusal == ("paid but refused: the session does not match the order: amount_subtotal, "
                                 "currency")


def test_an_event_at_the_pinned_version_asks_stripe_nothing(db: Database) -> None:
    p = new_order(db, credits=550, amount=2500)
    assert webhooks.process_event(db, _now(p), sessions=Sessions()).outcome == "granted"
    assert p.order().amount_paid == 1880


def test_an_older_event_while_stripe_cannot_be_reached_changes_nothing_and_is_retried(db: Database) -> None:
    p = new_order(db, credits=550, amount=2500)
    now = _now(p)
    old = _as_old(now)
    with pytest.raises(PaymentProviderUnavailable):  # the webhook answers 503: Stripe delivers it again
        webhooks.process_event(db, old, sessions=Sessions(error=PaymentProviderUnavailable("Stripe is down")))
    assert p.balance() == 0 and _kept(db) == 0
    order = p.order()
    assert (order.status, order.refusal) == ("pending", None)
    assert webhooks.process_event(db, old, sessions=Sessions(now)).outcome == "granted"
    assert p.balance() == 550 and _kept(db) == 1


def test_an_older_event_of_a_session_stripe_does_not_know_is_judged_as_it_came(db: Database) -> None:
    p = new_order(db, credits=550, amount=2500)
    gone = Sessions(error=SessionNotFound("no such checkout.session"))
    assert webhooks.process_event(db, _as_old(_now(p)), sessions=gone).outcome == "refused"
    assert p.balance() == 0 and gone.asked == [p.session_id]


def _nested(depth: int, container: str) -> bytes:
    """An event whose data.object holds a value ``depth`` levels deep in all (the event itself is level 1)."""
    inner = '"x"'
    for _ in range(depth - 4):  # event > data > object > chain...
        inner = f'{{"a": {inner}}}' if container == "dict" else f"[{inner}]"
    return f'{{"id": "evt_1", "type": "t", "data": {{"object": {{"chain": {inner}}}}}}}'.encode()


BODIES = {
    "plain": (b'{"id": "evt_1", "type": "t", "data": {"object": {"name": "caf\xc3\xa9"}}}', None),
    "64 deep in objects": (_nested(64, "dict"), None),
    "65 deep in objects": (_nested(65, "dict"), MalformedEvent),
    "64 deep in arrays": (_nested(64, "list"), None),
    "65 deep in arrays": (_nested(65, "list"), MalformedEvent),
    "NUL escaped": (b'{"id": "evt_1", "type": "t", "data": {"object": {"name": "a\\u0000b"}}}', RefusedEvent),
    "NUL in a key": (b'{"id": "evt_1", "type": "t", "data": {"object": {"a\\u0000": 1}}}', RefusedEvent),
    "a backslash before u0000": (b'{"id": "evt_1", "type": "t", "data": {"object": {"n": "\\\\u0000"}}}', None),
    "a lone surrogate escaped": (b'{"id": "evt_1", "type": "t", "data": {"object": {"n": "\\ud800"}}}',
                                 MalformedEvent),
    "a lone surrogate written raw": (b'{"id": "evt_1", "type": "t", "data": {"object": {"n": "\xed\xa0\x80"}}}',
                                     MalformedEvent),
    "an emoji escaped as a pair": (b'{"id": "evt_1", "type": "t", "data": {"object": {"n": "\\ud83d\\ude00"}}}',
                                   None),
    "a scalar": (b"5", None),
    "many brackets, shallow": (b'{"id": "evt_1", "type": "t", "data": {"object": {"l": [' + b", ".join([b"[{}]"] * 100)
                               + b"]}}}", None),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_the_check_from_the_bytes_answers_as_the_walk_of_every_value(name: str) -> None:
    """check_values clears most bodies from their bytes (no \\u escape, strict UTF-8) and walks only the depth;
    for every body its answer is the full walk's."""
    import json

    body, expected = BODIES[name]
    event = json.loads(body)
    answers = []
    for payload in (body, None):
        try:
            webhooks.check_values(event, payload)
            answers.append(None)
        except (MalformedEvent, RefusedEvent) as exc:
            answers.append(type(exc))
    assert answers == [expected, expected]


def test_a_granting_event_logs_one_line_with_its_order_user_and_credits(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="creditdesk.payments")
    p = new_order(db, credits=550, amount=2500)
    event = _now(p)
    webhooks.process_event(db, event)
    lines = [r.getMessage() for r in caplog.records if r.name == "creditdesk.payments"]
    assert lines == [f"payment event=checkout.session.completed event_id={event['id']} order={p.order_id} "
                     f"user={p.user_id} source=webhook outcome=granted credits=550"]
    caplog.clear()
    webhooks.process_event(db, event)  # a duplicate: one line too, no credits
    assert [r.getMessage() for r in caplog.records] == [
        f"payment event=checkout.session.completed event_id={event['id']} order=None user=None source=webhook "
        "outcome=duplicate"]


@pytest.mark.parametrize(("path", "status", "kept"), [
    ("/api/webhooks/stripe", 200, False), ("/api/webhooks/stripe?x=1", 204, False),
    ("/api/webhooks/stripe", 400, True), ("/api/webhooks/stripe", 503, True), ("/api/health", 200, True),
])
def test_the_access_line_of_a_delivery_answered_2xx_is_left_to_the_events_own_line(
    path: str, status: int, kept: bool
) -> None:
    from backend.api.app import QuietDeliveries

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "POST", path, "1.1", status), None)
    assert QuietDeliveries().filter(record) is kept
