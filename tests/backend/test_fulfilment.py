"""Fulfilment's money rule, in process on both engines: a paid session is granted when its subtotal is the
pack's price, whatever its total after a promotion code's discount or exclusive tax; the order keeps what
was paid; anything still refused says why, and stays for support."""

from __future__ import annotations

from typing import Any

import pytest

from backend import alerts, fulfilment, orders
from backend.db import Database
from backend.payments.base import SessionState
from tests.helpers.payments import Purchase, new_order, refund_event, session_event


def _session(p: Purchase, **changes: Any) -> dict[str, Any]:
    event = session_event(p)
    obj = event["data"]["object"]
    obj.update(amount_subtotal=p.amount)
    details = changes.pop("total_details", None)
    if details:
        obj["total_details"] = {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0, **details}
    obj.update(changes)
    return event


# (what Stripe says of the session, the outcome, the order's amount_paid, discount and tax, its refusal)
TOTALS = {
    "list price": ({}, "granted", (1000, 0, 0)),
    "promotion code": ({"amount_total": 667, "total_details": {"amount_discount": 333}}, "granted", (667, 333, 0)),
    "exclusive tax": ({"amount_total": 1191, "total_details": {"amount_tax": 191}}, "granted", (1191, 0, 191)),
    "both": ({"amount_total": 858, "total_details": {"amount_discount": 333, "amount_tax": 191}}, "granted",
             (858, 333, 191)),
    "all discounted": ({"amount_total": 0, "payment_status": "no_payment_required", "payment_intent": None,
                        "total_details": {"amount_discount": 1000}}, "granted", (0, 1000, 0)),
    "another subtotal": ({"amount_subtotal": 999, "amount_total": 999}, "refused", None),
    "another currency": ({"currency": "eur"}, "refused", None),
    "no subtotal, total at the price": ({"amount_subtotal": None}, "granted", (1000, 0, 0)),
    "no subtotal, another total": ({"amount_subtotal": None, "amount_total": 667}, "refused", None),
    "not paid": ({"payment_status": "unpaid"}, "not_paid", None),
    "nothing to pay, yet a total": ({"payment_status": "no_payment_required", "payment_intent": None},
                                    "not_paid", None),
    "nothing to pay, no total": ({"amount_total": None, "payment_status": "no_payment_required",
                                  "payment_intent": None}, "not_paid", None),
}


@pytest.mark.parametrize("case", TOTALS)
def test_a_paid_session_is_granted_by_its_subtotal_and_the_order_keeps_what_was_paid(db: Database, case: str) -> None:
    changes, outcome, kept = TOTALS[case]
    p = new_order(db, credits=333, amount=1000)
    assert p.apply(_session(p, **changes)) == outcome
    order = p.order()
    if outcome == "granted":
        assert p.balance() == 333 and order.status == "paid"  # the pack's credits, whatever was paid
        assert (order.amount_paid, order.amount_discount, order.amount_tax) == kept
        assert order.refusal is None
    else:
        assert p.balance() == 0 and order.status == "pending" and order.amount_paid is None
        assert (order.refusal is not None) == (outcome == "refused")


def test_a_refusal_says_why_and_a_later_good_session_clears_it(db: Database) -> None:
    p = new_order(db, credits=333, amount=1000)
    assert p.apply(_session(p, amount_subtotal=999, currency="eur")) == "refused"
    assert p.order().refusal == "paid but refused: the session does not match the order: amount_subtotal, currency"
    assert p.apply(_session(p)) == "granted"
    assert p.order().refusal is None and p.balance() == 333


def test_refunds_of_a_discounted_payment_are_measured_against_what_was_paid(db: Database) -> None:
    p = new_order(db, credits=333, amount=1000)
    p.apply(_session(p, amount_total=667, total_details={"amount_discount": 333}))
    assert p.apply(refund_event(p, "re_1", 334, "succeeded", "refund.created")) == "clawed_back"
    assert p.balance() == 333 - 166  # 333 * 334 // 667 = 166.75: half the payment, half the credits
    assert p.apply(refund_event(p, "re_2", 333, "succeeded", "refund.created")) == "clawed_back"
    assert p.balance() == 0 and p.order().status == "refunded"


def test_refunds_of_a_taxed_payment_are_measured_against_its_total(db: Database) -> None:
    p = new_order(db, credits=333, amount=1000)
    p.apply(_session(p, amount_total=1191, total_details={"amount_tax": 191}))
    p.apply(refund_event(p, "re_1", 1000, "succeeded", "refund.created"))
    assert p.balance() == 333 - 279 and p.order().status == "paid"  # 333 * 1000 // 1191 = 279.6
    p.apply(refund_event(p, "re_2", 191, "succeeded", "refund.created"))
    assert p.balance() == 0 and p.order().status == "refunded"


def test_a_session_is_paid_when_complete_and_paid_or_owing_nothing() -> None:
    def state(status: str, payment_status: str, total: int | None = 0) -> SessionState:
        return SessionState("cs_1", status, payment_status, total, "usd", None, None)

    assert state("complete", "paid").is_paid and state("complete", "no_payment_required").is_paid
    assert not state("complete", "unpaid").is_paid and not state("open", "paid").is_paid
    assert not state("expired", "no_payment_required").is_paid
    # "No payment required" with something still to pay is a payment delayed, not one made.
    assert not state("complete", "no_payment_required", 1).is_paid
    assert not state("complete", "no_payment_required", None).is_paid
    assert state("complete", "paid", 1).is_paid


def test_the_session_reads_stripes_totals_and_ignores_what_is_not_an_amount() -> None:
    obj = {"object": "checkout.session", "id": "cs_1", "amount_subtotal": 1000, "amount_total": 858,
           "total_details": {"amount_discount": 333, "amount_tax": 191, "amount_shipping": 0}}
    state = SessionState.from_stripe(obj)
    assert (state.amount_subtotal, state.amount_total, state.amount_discount, state.amount_tax) == (1000, 858, 333, 191)
    odd = SessionState.from_stripe({**obj, "amount_subtotal": "1000", "amount_total": True,
                                    "total_details": {"amount_discount": -5, "amount_tax": None}})
    assert (odd.amount_subtotal, odd.amount_total, odd.amount_discount, odd.amount_tax) == (None, None, 0, 0)
    assert SessionState.from_stripe({**obj, "total_details": None}).amount_discount == 0


# --- expiry, failure and cancellation of orders: every way the news comes, from every status ---------------


def _state(p: Purchase, status: str, payment_status: str = "unpaid") -> SessionState:
    obj = _session(p, status=status, payment_status=payment_status, payment_intent=None)["data"]["object"]
    return SessionState.from_stripe(obj)


def _to(db: Database, p: Purchase, status: str) -> None:
    """Put the order in ``status`` the way the product does, for the table below."""
    if status == "cancelled":
        with db.transaction() as conn:
            order = orders.by_id(conn, p.order_id, lock=True)
            assert order is not None
            fulfilment.mark_cancelled(conn, order, source="test")
    elif status == "expired":
        _news(db, p, "expire")
    elif status == "failed":
        _news(db, p, "fail")
    elif status == "paid":
        assert p.apply(_session(p)) == "granted"


def _news(db: Database, p: Purchase, news: str) -> fulfilment.Result:
    with db.transaction() as conn:
        if news == "expire":
            return fulfilment.apply_session(conn, _state(p, "expired"), source="test")
        if news == "fail":
            return fulfilment.mark_failed(conn, _state(p, "complete"), source="test")
        if news == "open":
            return fulfilment.apply_session(conn, _state(p, "open"), source="test")
        order = orders.by_id(conn, p.order_id, lock=True)
        assert order is not None
        return fulfilment.mark_cancelled(conn, order, source="test")


# (status before, news) -> (outcome, status after, alert kinds made)
ORDER_NEWS = {
    ("pending", "expire"): ("expired", "expired", ["purchase_expired"]),
    ("pending", "fail"): ("failed", "failed", ["purchase_failed"]),
    ("pending", "cancel"): ("cancelled", "cancelled", []),
    ("pending", "open"): ("not_paid", "pending", []),
    ("cancelled", "expire"): ("expired", "expired", []),  # the customer knows: no alert
    ("cancelled", "fail"): ("failed", "failed", ["purchase_failed"]),
    ("cancelled", "cancel"): ("no_change", "cancelled", []),
    ("expired", "expire"): ("no_change", "expired", []),
    ("expired", "fail"): ("no_change", "expired", []),
    ("expired", "cancel"): ("no_change", "expired", []),
    ("failed", "expire"): ("no_change", "failed", []),
    ("failed", "cancel"): ("no_change", "failed", []),
    ("paid", "expire"): ("no_change", "paid", []),  # nothing goes backwards once money was taken
    ("paid", "fail"): ("no_change", "paid", []),
    ("paid", "cancel"): ("no_change", "paid", []),
    ("paid", "open"): ("not_paid", "paid", []),
}


@pytest.mark.parametrize(("before", "news"), ORDER_NEWS, ids=str)
def test_expiry_failure_and_cancellation_of_orders(db: Database, before: str, news: str) -> None:
    outcome, after, made = ORDER_NEWS[before, news]
    p = new_order(db, credits=333, amount=1000)
    _to(db, p, before)
    with db.read() as conn:
        alerts_before = len(alerts.page(conn, p.user_id, unread_only=False, limit=100)[0])
    result = _news(db, p, news)
    assert (result.outcome, p.order().status) == (outcome, after)
    assert result.order is not None and result.order.status == after
    with db.read() as conn:
        new = alerts.page(conn, p.user_id, unread_only=False, limit=100)[0]
    assert [a.kind for a in new[: len(new) - alerts_before]] == made
    assert p.balance() == (333 if before == "paid" else 0)


def test_news_of_a_session_no_order_has_is_refused_and_changes_nothing(db: Database) -> None:
    p = new_order(db)
    stranger = SessionState.from_stripe({**_session(p)["data"]["object"], "id": "cs_nobody"})
    with db.transaction() as conn:
        for result in (fulfilment.apply_session(conn, stranger, source="test"),
                       fulfilment.mark_failed(conn, stranger, source="test")):
            assert (result.outcome, result.order) == ("unknown_order", None)
            assert result.detail == "no order has this Checkout Session"
    assert p.order().status == "pending" and p.balance() == 0


def test_a_failure_of_a_session_that_is_not_the_orders_is_refused(db: Database) -> None:
    p = new_order(db, credits=333, amount=1000)
    with db.transaction() as conn:
        result = fulfilment.mark_failed(conn, SessionState.from_stripe(
            {**_session(p)["data"]["object"], "client_reference_id": "999"}), source="test")
    assert result.outcome == "refused" and "client_reference_id" in result.detail
    assert p.order().status == "pending"


# --- what a grant and a move say: to the caller, the user's alerts, support's log, the metrics ------------


def test_a_grant_answers_the_paid_order_alerts_the_user_and_logs_for_support(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    from backend import metrics

    registry = metrics.enable()  # as serve does when CREDITDESK_METRICS_PORT is set

    def granted() -> float:
        return registry.get_sample_value("creditdesk_credits_total", {"movement": "granted"}) or 0.0

    granted_before = granted()
    p = new_order(db, credits=333, amount=1000)
    caplog.set_level("INFO", logger="creditdesk.payments")
    with db.transaction() as conn:
        result = fulfilment.apply_session(conn, SessionState.from_stripe(_session(p)["data"]["object"]),
                                          source="verify")
    assert result.outcome == "granted" and result.order is not None and result.order.status == "paid"
    assert result.order.id == p.order_id
    with db.read() as conn:  # the paid order answered is the row as stored (built from the row read and the change)
        assert orders.by_id(conn, p.order_id) == result.order
    assert f"payment order={p.order_id} session={p.session_id} user={p.user_id} source=verify outcome=granted " \
           "credits=333" in caplog.text
    assert granted() == granted_before + 333
    with db.read() as conn:
        [alert] = alerts.page(conn, p.user_id, unread_only=False, limit=10)[0]
    assert (alert.kind, alert.data["orderId"], alert.data["credits"]) == ("purchase_confirmed", p.order_id, 333)
    with db.transaction() as conn:  # the same payment told again (another event, verify): granted already
        again = fulfilment.apply_session(conn, SessionState.from_stripe(_session(p)["data"]["object"]),
                                         source="webhook")
    assert again.outcome == "already_granted" and again.order is not None and again.order.status == "paid"
    assert p.balance() == 333


def test_a_grant_whose_ledger_entry_is_already_there_says_so(db: Database) -> None:
    """The ledger has the purchase (its unique reference) while the order row lagged behind: no second entry."""
    p = new_order(db, credits=333, amount=1000)
    from backend import ledger

    with db.transaction() as conn:
        ledger.post(conn, user_id=p.user_id, type="purchase", amount=333, reference=p.session_id)
    with db.transaction() as conn:
        result = fulfilment.apply_session(conn, SessionState.from_stripe(_session(p)["data"]["object"]),
                                          source="reconcile")
    assert result.outcome == "already_granted" and result.order is not None and result.order.status == "paid"
    assert p.balance() == 333 and len(p.entries()) == 1


def test_a_move_logs_where_from_and_where_to(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    p = new_order(db)
    caplog.set_level("INFO", logger="creditdesk.payments")
    _news(db, p, "expire")
    assert f"payment order={p.order_id} session={p.session_id} user={p.user_id} source=test outcome=expired " \
           "from=pending" in caplog.text


@pytest.mark.parametrize(("change", "named"), [
    ({"metadata": {"type": "donation"}}, "metadata.type"),
    ({"metadata": {"orderId": "ord_other"}}, "metadata.orderId"),
    ({"metadata": {"userId": "999"}}, "metadata.userId"),
    ({"metadata": {"packId": "pro"}}, "metadata.packId"),
    ({"metadata": {"credits": "5000"}}, "metadata.credits"),
    ({"client_reference_id": "999"}, "client_reference_id"),
    ({"amount_subtotal": 1}, "amount_subtotal"),
    ({"amount_subtotal": None, "amount_total": 1}, "amount_total"),
    ({"currency": "eur"}, "currency"),
], ids=str)
def test_a_refusal_names_exactly_what_does_not_match(db: Database, change: dict[str, Any], named: str) -> None:
    p = new_order(db, credits=333, amount=1000)
    change = dict(change)  # (the table is shared by both engines' runs)
    event = _session(p)
    obj = event["data"]["object"]
    obj["metadata"] = {**obj["metadata"], **change.pop("metadata", {})}
    obj.update(change)
    with db.transaction() as conn:
        result = fulfilment.apply_session(conn, SessionState.from_stripe(obj), source="test")
    assert (result.outcome, result.detail) == ("refused", f"the session does not match the order: {named}")


@pytest.mark.parametrize("details", [
    None,  # never set: the order keeps none
    {},  # set, all blank: none either
    {"name": "Zoë Müller GmbH", "line1": "Hauptstraße 7", "postal_code": "10115", "city": "Berlin", "country": "DE",
     "tax_id_type": "eu_vat", "tax_id_value": "DE123456789"},
])
def test_a_paid_order_keeps_its_buyers_billing_details_as_they_were_when_paid(
        db: Database, details: dict[str, str] | None) -> None:
    """Read with the order's row in the grant's one statement (orders.to_pay), the copy is the text
    billing_details.snapshot makes; details changed after the payment do not change it."""
    from backend import billing_details

    p = new_order(db, credits=333, amount=1000)
    with db.transaction() as conn:
        if details is not None:
            billing_details.save(conn, p.user_id, billing_details.BillingDetails(**details))
        expected = billing_details.snapshot(conn, p.user_id)
    assert p.apply(_session(p)) == "granted"
    assert p.order().billing_details == expected
    assert (expected is None) == (not details)
    with db.transaction() as conn:
        billing_details.save(conn, p.user_id, billing_details.BillingDetails(name="Someone Else"))
    assert p.order().billing_details == expected
