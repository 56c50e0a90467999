"""The support console (`creditdesk-backend user|adjust|events|replay`) on the cases support gets."""

from __future__ import annotations

import json

import pytest

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.stripe_server import FakeStripe

Stripe = tuple[BackendProcess, FakeStripe]


def one_line_refusal(result: object) -> None:
    assert result.returncode == 2  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert stderr.startswith("creditdesk-backend") and stderr.count("\n") == 1 and "Traceback" not in stderr


def test_i_paid_but_see_no_credits(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("pro")["sessionId"]
    with fake.drop_webhooks():  # the payment went through; its webhook never arrived
        fake.pay(session_id)
    fake.wait_deliveries()

    before = json.loads(backend.admin("user", api.user["email"], "--json").stdout)
    assert before["balance"] == 0
    (order,) = before["orders"]
    assert (order["sessionId"], order["status"], order["creditsGranted"]) == (session_id, "pending", 0)

    assert backend.admin("reconcile").returncode == 0
    text = backend.admin("user", api.user["email"]).stdout
    assert "Balance 1200 credits" in text and order["id"] in text and "checkout.session.completed" in text
    after = json.loads(backend.admin("user", api.user["email"], "--json").stdout)
    assert after["orders"][0]["status"] == "paid" and after["orders"][0]["creditsGranted"] == 1200
    assert [e["source"] for e in after["events"]] == ["reconcile"]


def test_my_refund_failed(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("standard")["sessionId"]
    fake.pay(session_id)
    refund = fake.create_refund(session_id, status="pending").object
    fake.settle_refund(refund["id"], "failed")
    fake.wait_deliveries()
    report = json.loads(backend.admin("user", api.user["email"], "--json").stdout)
    assert report["balance"] == 550 and report["orders"][0]["status"] == "paid"
    assert [e["type"] for e in report["ledger"]] == ["refund_reversal", "refund", "purchase"]
    events = json.loads(backend.admin("events", "--session", session_id, "--json").stdout)["events"]
    outcomes = [e["outcome"] for e in events]
    # Stripe tells of the failure several ways (refund.updated, refund.failed, charge.refund.updated): one
    # of them gave the credits back, whichever came first; the others found nothing left to do.
    assert outcomes.count("given_back") == 1 and outcomes.count("clawed_back") == 1
    assert {e["type"] for e in events} >= {"refund.created", "refund.failed", "checkout.session.completed"}
    failed_only = json.loads(backend.admin("events", "--session", session_id, "--type", "refund.failed", "--json")
                             .stdout)["events"]
    assert [e["type"] for e in failed_only] == ["refund.failed"]


def test_adjust_once_per_key(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    email = api.user["email"]
    first = stub_backend.admin("adjust", email, "250", "--reason", "Goodwill for the outage", "--key", "case-41")
    assert first.returncode == 0 and "balance now 250" in first.stdout
    again = stub_backend.admin("adjust", email, "250", "--reason", "Goodwill for the outage", "--key", "case-41")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert stub_backend.admin("adjust", email, "-50", "--reason", "Taken back").returncode == 0
    assert api.balance() == 200
    (entry, *_) = api.transactions()
    assert (entry["type"], entry["amount"], entry["description"]) == ("adjustment", -50, "Taken back")


@pytest.mark.parametrize("args", [
    ["adjust", "nobody@example.com", "5", "--reason", "x"],
    ["adjust", "{email}", "0", "--reason", "x"],
    ["adjust", "{email}", "1.5", "--reason", "x"],
    ["adjust", "{email}", "lots", "--reason", "x"],
    ["adjust", "{email}", "99999999999", "--reason", "x"],
    ["adjust", "{email}", "5", "--reason", "   "],
    ["adjust", "{email}", "5"],
    ["user", "nobody@example.com"],
    ["events", "--order", "ord_nope"],
    ["events", "--session", "cs_nope"],
    ["replay", "evt_nope"],
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(stub_backend: BackendProcess, args: list[str]) -> None:
    api = Api(stub_backend.url).register()
    counts = "SELECT (SELECT COUNT(*) FROM ledger_entries) AS e, (SELECT COUNT(*) FROM users) AS u"
    before = stub_backend.query(counts)
    one_line_refusal(stub_backend.admin(*[a.format(email=api.user["email"]) for a in args]))
    assert stub_backend.query(counts) == before


def test_replay_is_a_no_op_where_the_effect_is_already_in_the_ledger(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    event = fake.pay(session_id)
    fake.wait_deliveries()
    r = backend.admin("replay", event["id"])
    assert r.returncode == 0 and "already_granted" in r.stdout
    assert api.balance() == 100
    (stored,) = json.loads(backend.admin("events", "--order", json.loads(
        backend.admin("user", api.user["email"], "--json").stdout)["orders"][0]["id"], "--json").stdout)["events"]
    assert stored["attempts"] == 2 and stored["outcome"] == "already_granted"
