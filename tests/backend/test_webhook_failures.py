"""Webhooks under failure: a transient error answers 503 and the retry processes the event; a crash
in the middle of a storm of deliveries loses and doubles nothing once Stripe redelivers."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from backend import db as backend_db
from backend import event_store
from backend.api.app import create_app
from backend.config import Settings
from backend.services import Services
from tests.conftest import SHARED_ENV, STRIPE_KEY, WEBHOOK_SECRET
from tests.helpers.api import Api
from tests.helpers.backend import InProcessServer
from tests.helpers.stripe_server import FakeStripe


def test_a_locked_database_answers_503_and_the_retry_grants_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_db, "BUSY_TIMEOUT_SECONDS", 0.3)
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        settings = Settings(db_path=tmp_path / "db.sqlite3", stripe_secret_key=STRIPE_KEY,
                            stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=fake.url)
        services = Services.build(settings, "http://127.0.0.1:9")
        with InProcessServer(create_app(services)) as server:
            api = Api(server.url).register()
            session_id = api.checkout("starter")["sessionId"]
            event = fake.pay(session_id, deliver=False)
            body = fake.payload(event)

            blocker = sqlite3.connect(settings.db_path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
            r = api.post("/api/webhooks/stripe", data=body, headers={"Stripe-Signature": fake.sign(body)})
            assert r.status_code == 503 and r.headers["Retry-After"]
            assert r.json()["error"]["code"] == "temporarily_unavailable"
            blocker.execute("ROLLBACK")
            blocker.close()
            with services.db.read() as conn:
                assert conn.execute(text("SELECT COUNT(*) FROM webhook_events")).scalar() == 0

            for _ in range(2):  # Stripe's retry, then a duplicate
                r = api.post("/api/webhooks/stripe", data=body, headers={"Stripe-Signature": fake.sign(body)})
                assert r.status_code == 200
            assert api.balance() == 100
            with services.db.read() as conn:
                assert conn.execute(text("SELECT outcome FROM webhook_events")).scalar() == "granted"

            # A duplicate needs no write lock: it is answered while another writer holds it, from the
            # database when this process does not remember the event (a restart, another replica) and
            # from memory when it does.
            monkeypatch.setattr(event_store, "recent", event_store.RecentEvents())
            blocker = sqlite3.connect(settings.db_path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            try:
                for _ in range(2):
                    r = api.post("/api/webhooks/stripe", data=body, headers={"Stripe-Signature": fake.sign(body)})
                    assert r.status_code == 200 and r.json()["outcome"] == "duplicate"
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
        services.db.close()


def test_a_crash_during_a_storm_of_webhooks_loses_and_doubles_nothing(backend_factory) -> None:
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        fake.webhook_timeout = 3
        env = {**SHARED_ENV, "STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
               "STRIPE_API_BASE": fake.url}
        backend = backend_factory(env)
        try:
            users = [Api(backend.url).register() for _ in range(4)]
            sessions = [users[n % 4].checkout("starter")["sessionId"] for n in range(40)]
            events = [fake.pay(s, deliver=False) for s in sessions]
            fake.webhook_url = f"{backend.url}/api/webhooks/stripe"

            def storm() -> None:
                for event in events:
                    fake.deliver(event, times=3, concurrency=3)

            sender = threading.Thread(target=storm)
            sender.start()
            deadline = time.monotonic() + 20
            while len(fake.deliveries) < 10 and time.monotonic() < deadline:  # well under way, not finished
                time.sleep(0.01)
            backend.kill()  # SIGKILL mid-storm
            sender.join()
            delivered_ok = sum(1 for _, status in fake.deliveries if status == 200)
            assert delivered_ok < len(events) * 3  # the crash really cut deliveries short

            backend.start()  # same database, new port
            fake.webhook_url = f"{backend.url}/api/webhooks/stripe"
            for event in events:  # Stripe redelivers (here: everything, duplicates included)
                assert fake.deliver(event) == [200]
            for api in users:
                api.base_url = backend.url
                assert api.balance() == 1000
            for session_id in sessions:
                n = backend.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE reference = ?", session_id)
                assert n[0]["n"] == 1
            assert backend.ledger_problems() == []
        finally:
            backend.stop()
