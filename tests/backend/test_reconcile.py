"""Catching up with Stripe: events that never reached the endpoint are read back from the Events API.

The Stripe-compatible server keeps every event in its Events API whether or not it delivered it, and can
drop chosen webhooks; `creditdesk-backend reconcile` (and `serve` on its interval) must repair the rest.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import text

from backend import clawbacks, ledger, reconcile, support, webhooks
from backend.api.app import create_app
from backend.config import Settings
from backend.schema import orders as orders_table
from backend.services import Services
from tests.conftest import SHARED_ENV, STRIPE_KEY, WEBHOOK_SECRET, Databases
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess, InProcessServer
from tests.helpers.stripe_server import FakeStripe

Stripe = tuple[BackendProcess, FakeStripe]


def test_reconcile_repairs_payments_refunds_and_expiries_that_were_never_delivered(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    pro, standard, starter = (api.checkout(p)["sessionId"] for p in ("pro", "standard", "starter"))
    with fake.drop_webhooks():  # the endpoint is down; Stripe keeps the events
        fake.pay(pro)
        fake.pay(standard)
        fake.create_refund(standard, 1250, status="pending")  # 550 * 1250 // 2500 = 275 credits back
        fake.expire(starter)
    fake.wait_deliveries()
    assert api.balance() == 0 and len(fake.dropped) >= 5

    r = backend.admin("reconcile", "--since", "72h")
    assert r.returncode == 0, r.stderr
    assert "checkout.session.completed  -> granted" in r.stdout
    assert api.balance() == 1200 + 550 - 275
    statuses = {o["sessionId"]: o["status"] for o in json.loads(backend.admin("user", api.user["email"], "--json")
                                                                     .stdout)["orders"]}
    assert statuses == {pro: "paid", standard: "paid", starter: "expired"}

    again = json.loads(backend.admin("reconcile", "--json").stdout)  # safe to run again: nothing left to do
    assert again["eventsApplied"] == [] and again["ordersChanged"] == [] and again["eventsSeen"] >= 5
    assert api.balance() == 1200 + 550 - 275


def test_reconcile_while_the_webhooks_arrive_applies_each_event_once(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    sessions = [api.checkout("starter")["sessionId"] for _ in range(8)]
    with fake.drop_webhooks():
        events = [fake.pay(s) for s in sessions]
        for s in sessions[:4]:
            fake.create_refund(s, 123)  # 100 * 123 // 500 = 24 credits back each
    fake.wait_deliveries()
    results: list[int] = []
    runner = threading.Thread(target=lambda: results.append(backend.admin("reconcile").returncode))
    runner.start()
    fake.deliver_events(list(fake.events.values()), times=2, shuffle=7)  # Stripe's retries, racing it
    runner.join()
    assert results == [0] and len(events) == 8
    assert api.balance() == 8 * 100 - 4 * 24
    assert [t["type"] for t in api.transactions()].count("purchase") == 8


def test_a_wrong_signing_secret_shows_up_for_support_and_reconcile_heals_it(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("standard")["sessionId"]
    with fake.drop_webhooks(wrong_secret=True):
        fake.pay(session_id)
    fake.wait_deliveries()
    failed = json.loads(backend.admin("events", "--json").stdout)["failedDeliveries"]
    assert failed and failed[0]["outcome"] == "rejected_signature" and failed[0]["signatureValid"] is False
    assert backend.admin("reconcile").returncode == 0
    assert api.balance() == 550


def test_serve_in_stripe_mode_heals_a_webhook_outage_by_itself(backend_factory) -> None:
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        backend = backend_factory({
            **SHARED_ENV, "STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": fake.url, "CREDITDESK_RECONCILE_INTERVAL": "1",
        })
        fake.webhook_url = f"{backend.url}/api/webhooks/stripe"
        api = Api(backend.url).register()
        session_id = api.checkout("pro")["sessionId"]
        with fake.drop_webhooks():
            fake.pay(session_id)
            fake.open_dispute(session_id, 2500)  # half: 600 credits held
        deadline = time.monotonic() + 30
        while api.balance() != 600 and time.monotonic() < deadline:  # nobody asks: no verify, no page
            time.sleep(0.2)
        assert api.balance() == 600
        assert "reconcile trigger=interval" in backend.log_with("reconcile trigger=interval")
        assert backend.ledger_problems() == []


def test_reconcile_refuses_a_bad_period_in_one_line_and_caps_it_at_30_days(stripe_backend: Stripe) -> None:
    backend, _ = stripe_backend
    bad = backend.admin("reconcile", "--since", "soon")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "72h" in bad.stderr
    capped = backend.admin("reconcile", "--since", "90d")
    assert capped.returncode == 0 and "30 days" in capped.stderr


# --- re-reading Stripe's truth about paid orders (in process, on both engines) ------------------------------


@dataclass
class InProcess:
    services: Services
    fake: FakeStripe
    api: Api

    def reconcile(self) -> reconcile.Report:
        return reconcile.reconcile(self.services, since=timedelta(hours=72), trigger="command")

    def lost_beyond_the_events_api(self, make: Callable[[], T]) -> T:
        """What Stripe does while the endpoint is down, 31 days ago: its events are past the Events API's reach."""
        self.fake.set_clock(time.time() - 31 * 24 * 3600)
        try:
            with self.fake.drop_webhooks():
                return make()
        finally:
            self.fake.set_clock(None)
            self.fake.wait_deliveries()


T = TypeVar("T")


@pytest.fixture
def in_process(tmp_path: Path, databases: Databases) -> Iterator[InProcess]:
    """A backend in Stripe mode served from this process, so that a test can reach its database and services."""
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        settings = Settings(db_path=tmp_path / "db.sqlite3", database_url=databases.new(),
                            stripe_secret_key=STRIPE_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
                            stripe_api_base=fake.url, reconcile_interval=0,
                            auth_limit_per_address="100000/minute")
        services = Services.build(settings, "http://127.0.0.1:9")
        try:
            with InProcessServer(create_app(services)) as server:
                fake.webhook_url = f"{server.url}/api/webhooks/stripe"
                yield InProcess(services, fake, Api(server.url).register())
                fake.wait_deliveries()
            with services.db.read() as conn:
                assert ledger.check_invariants(conn) == []
        finally:
            services.db.close()


def _paid(p: InProcess, pack: str = "standard") -> str:
    session_id = p.api.checkout(pack)["sessionId"]
    p.fake.pay(session_id)
    p.fake.wait_deliveries()
    return session_id


def test_reconcile_settles_a_refund_that_was_kept_but_never_clawed_back(in_process: InProcess) -> None:
    """What the grant's race left behind before the payment's lock: the refund kept, the credits not taken."""
    p = in_process
    session_id = _paid(p)
    refund = p.lost_beyond_the_events_api(lambda: p.fake.create_refund(session_id, 1337).object)
    with p.services.db.transaction() as conn:  # kept, as the losing side of the race kept it
        news = clawbacks.refund_news(refund, refund["created"])
        assert news is not None and clawbacks.record_refund(conn, news)
    assert p.api.balance() == 550
    report = p.reconcile()
    assert p.api.balance() == 550 - 550 * 1337 // 2500  # 294.14: 294 credits back
    assert report.payments_checked == 1
    assert [(c.outcome, c.credits, c.status) for c in report.payments_changed] == [("clawed_back", -294, "paid")]
    assert p.reconcile().payments_changed == []  # and once only


def test_reconcile_learns_of_refunds_and_dispute_ends_whose_events_were_lost(in_process: InProcess) -> None:
    p = in_process
    refunded, disputed = _paid(p), _paid(p, "pro")
    dispute = p.fake.open_dispute(disputed, 3001)  # 1200 * 3001 // 5000 = 720.24: 720 credits held
    p.fake.wait_deliveries()
    assert p.api.balance() == 550 + 1200 - 720
    p.lost_beyond_the_events_api(lambda: (p.fake.create_refund(refunded, 2500),
                                          p.fake.close_dispute(dispute.id, "won")))
    assert p.api.balance() == 550 + 1200 - 720
    report = p.reconcile()
    assert p.api.balance() == 1200
    assert sorted((c.outcome, c.credits, c.status) for c in report.payments_changed) == [
        ("clawed_back", -550, "refunded"), ("given_back", 720, "paid")]
    assert report.errors == []


def test_reconcile_matches_a_dispute_that_named_only_its_charge(in_process: InProcess) -> None:
    p = in_process
    session_id = _paid(p)
    opened = p.fake.open_dispute(session_id, 1001, deliver=False)  # 550 * 1001 // 2500 = 220.22
    created = opened.event("charge.dispute.created")
    created["data"]["object"]["payment_intent"] = None
    assert webhooks.process_event(p.services.db, created).outcome == "recorded"
    assert p.api.balance() == 550
    # The payment was long ago: only the charge (asked of Stripe) links the dispute to it.
    with p.services.db.transaction() as conn:
        conn.execute(orders_table.update().values(updated_at="2000-01-01T00:00:00.000Z"))
    report = p.reconcile()
    assert p.api.balance() == 550 - 220
    assert [(c.outcome, c.credits, c.status) for c in report.payments_changed] == [
        ("clawed_back", -220, "disputed")]


def test_a_refused_payment_stays_with_its_reason_and_is_not_expired_by_its_age(in_process: InProcess) -> None:
    p = in_process
    session_id = p.api.checkout("standard")["sessionId"]
    p.fake.sessions[session_id]["metadata"]["credits"] = "5500"  # not what the order sold: refused
    p.fake.pay(session_id)
    p.fake.wait_deliveries()
    with p.services.db.transaction() as conn:  # three days on, and Stripe no longer finds the session
        conn.execute(orders_table.update().values(created_at="2020-01-01T00:00:00.000Z"))
    del p.fake.sessions[session_id]
    report = p.reconcile()
    assert report.orders_changed == [] and p.api.balance() == 0
    [order] = [o for o in support.user_report(p.services.db, p.api.user["email"]).orders]
    assert order.status == "pending"
    assert order.refusal == "paid but refused: the session does not match the order: metadata.credits"


# --- a bad Events API -----------------------------------------------------------------------------------


def test_an_events_api_that_never_ends_is_read_within_bounds_and_the_run_is_partial(in_process: InProcess) -> None:
    p = in_process
    p.fake.fault("endless", path="/v1/events")
    ticks = iter(range(1_000_000))
    report = reconcile.reconcile(p.services, since=timedelta(hours=1), trigger="command",
                                 bounds=reconcile.Bounds(max_events=25, seconds=3600, clock=lambda: next(ticks)))
    assert report.partial and report.events_seen == 25
    assert "stopped after 25 events read" in report.errors[0]
    assert p.fake.calls("/v1/events", "GET") == 26  # and the page whose event was left for the next run
    # The time bound, on an injected clock: 10 s a read, a minute allowed.
    clock = iter(range(0, 10_000, 10))
    timed = reconcile.reconcile(p.services, since=timedelta(hours=1), trigger="command",
                                bounds=reconcile.Bounds(seconds=60, clock=lambda: next(clock)))
    assert timed.partial and "60 s of reading" in timed.errors[0] and timed.events_seen == 6
    # Stopping the server stops the run at once.
    stopped = reconcile.reconcile(p.services, since=timedelta(hours=1), trigger="interval",
                                  bounds=reconcile.Bounds(stopping=lambda: True))
    assert stopped.partial and stopped.events_seen == 0 and "the server is stopping" in stopped.errors[0]
    with p.services.db.read() as conn:
        recorded = conn.execute(text("SELECT error FROM reconcile_runs ORDER BY id")).scalars().all()
    assert all(error.startswith("partial: ") for error in recorded)


def test_bad_events_are_kept_as_failed_deliveries_and_the_good_ones_applied(in_process: InProcess) -> None:
    p = in_process
    sessions = [p.api.checkout("starter")["sessionId"] for _ in range(2)]
    good = [p.fake.pay(s, deliver=False) for s in sessions]
    bad_id = {**good[0], "id": {"nested": "evt_1"}}
    no_data = {**good[0], "id": "evt_nodata", "data": None}
    no_object = {**good[0], "id": "evt_noobject", "data": {"object": None}}
    p.fake.fault("page", path="/v1/events", data=[good[1], bad_id, no_data, no_object, good[0]])
    report = p.reconcile()
    assert p.api.balance() == 200  # both payments, the one listed after the bad events too
    assert report.partial and len(report.errors) == 3
    assert [e.outcome for e in report.events_applied] == ["granted", "granted"]
    with p.services.db.read() as conn:
        kept = conn.execute(text("SELECT event_id, outcome, error FROM failed_deliveries ORDER BY id")).all()
    assert [(event_id, outcome) for event_id, outcome, _ in kept] == [
        (None, "malformed"), ("evt_nodata", "malformed"), ("evt_noobject", "malformed")]
    assert "without a usable id" in kept[0][2] and "no data.object" in kept[1][2]
    assert p.api.balance() == 200 and not p.reconcile().events_applied  # a second run: nothing more
