"""Abuse: signed events built to break the handler, stale or future signatures, and a burst of sign-ups.

Refused before any database is asked, the same on either engine, these run once, on SQLite (the module's
``engines`` marker), except the signed events holding what the engines would not store alike if it got through
(:data:`BEYOND_A_COLUMN`: a lone surrogate, which neither can encode, fails in a different place on each, and
so does a session's amount beyond 64 bits, which goes into a column): those run on both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.stripe_server import FakeStripe

MALFORMED = {
    "nested 5,000 deep": '{"id": "evt_deep", "type": "checkout.session.completed", "data": {"object": '
                         + "[" * 5000 + "]" * 5000 + "}}",
    "NaN": '{"id": "evt_nan", "type": "customer.created", "data": {"object": {"amount": NaN}}}',
    "a number of 5,000 digits": '{"id": "evt_digits", "type": "customer.created", "data": {"object": {"n": '
                                + "9" * 5000 + "}}}",
}
BEYOND_A_COLUMN = {
    "an integer beyond 64 bits": '{"id": "evt_big", "type": "checkout.session.completed", "data": {"object": '
                                 '{"object": "checkout.session", "id": "cs_big", "amount_total": '
                                 + str(2**70) + "}}}",
    "a lone surrogate in the id": '{"id": "evt_\\ud800", "type": "customer.created", "data": {"object": {}}}',
    "a lone surrogate in a key": '{"id": "evt_key", "type": "customer.created", "data": {"object": {"\\udfff": 1}}}',
}

pytestmark = pytest.mark.engines("sqlite")


@pytest.mark.parametrize("name", MALFORMED)
def test_signed_but_malformed_events_are_400_for_good(stripe_backend: tuple[BackendProcess, FakeStripe],
                                                       name: str) -> None:
    refused_for_good(*stripe_backend, MALFORMED[name])


@pytest.mark.engines("sqlite", "postgresql")
@pytest.mark.parametrize("name", BEYOND_A_COLUMN)
def test_signed_events_holding_what_no_column_takes_are_400_for_good(
    stripe_backend: tuple[BackendProcess, FakeStripe], name: str
) -> None:
    refused_for_good(*stripe_backend, BEYOND_A_COLUMN[name])


def refused_for_good(backend: BackendProcess, fake: FakeStripe, body: str) -> None:
    raw = body.encode()
    r = requests.post(f"{backend.url}/api/webhooks/stripe", data=raw, timeout=30,
                      headers={"Stripe-Signature": fake.sign(raw), "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "malformed_event" and "Retry-After" not in r.headers
    assert backend.query("SELECT COUNT(*) AS n FROM webhook_events")[0]["n"] == 0
    assert "Traceback" not in backend.log()


def test_a_signature_from_the_future_is_refused_like_a_stale_one(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    event = fake.pay(session_id, deliver=False)
    now = int(time.time())
    for timestamp in (now + 3600, now - 3600):
        body = fake.payload(event)
        r = requests.post(f"{backend.url}/api/webhooks/stripe", data=body, timeout=30,
                          headers={"Stripe-Signature": fake.sign(body, timestamp=timestamp)})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_signature"
    assert api.balance() == 0
    assert fake.deliver(event, timestamp=now + 60) == [200]  # a clock a minute fast is within the tolerance
    assert api.balance() == 100


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


def test_fifty_sign_ups_at_once_stay_within_300_mb(backend_factory) -> None:
    # The production argon2 profile (64 MiB a hash): its memory is what this test is about.
    backend = backend_factory({"CREDITDESK_AUTH_RATE_LIMIT_PER_ADDRESS": "1000/minute",
                               "CREDITDESK_PASSWORD_HASH_PROFILE": ""})
    assert backend.proc is not None

    def sign_up(n: int) -> int:
        return requests.post(f"{backend.url}/api/auth/register", timeout=120,
                             json={"email": f"burst{n}@example.com", "password": "correct horse battery"}).status_code

    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(sign_up, range(50)))
        balance = Api(backend.url).register("meanwhile@example.com")  # sign-ups wait their turn; others too
    assert statuses == [201] * 50 and balance.balance() == 0
    assert peak_rss_mb(backend.proc.pid) < 300


@pytest.mark.subprocess
def test_importing_the_backend_hashes_no_password() -> None:
    code = """
import argon2
calls = []
real = argon2.PasswordHasher.hash
argon2.PasswordHasher.hash = lambda self, *a, **k: calls.append(1) or real(self, *a, **k)
import backend.accounts, backend.api.app, backend.cli, backend.services
print(json.dumps(len(calls)))
"""
    r = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == 0
