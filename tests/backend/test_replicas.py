"""Several replicas of the backend on one PostgreSQL database, as a service runs behind a proxy.

Nothing in one process keeps the replicas apart: what holds money exactly once here is the database
(row locks, unique keys). Each scenario ends with one grant per session, no spend beyond a balance, and
``creditdesk-backend check`` passing on the shared database. Rate limits hold across replicas through a
real Redis.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import SHARED_ENV, STRIPE_KEY, WEBHOOK_SECRET
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.commands import CommandResult, run_command
from tests.helpers.servers import PostgresServer, RedisServer
from tests.helpers.stripe_server import FakeStripe

Replicas = Callable[..., list[BackendProcess]]


@pytest.fixture
def database_url(postgres: PostgresServer) -> Iterator[str]:
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[Replicas]:
    """``replicas(n, env)`` starts n backends on one database; all are stopped after the test, and the
    ledger must add up then."""
    started: list[BackendProcess] = []

    def start(n: int, env: dict[str, str] | None = None) -> list[BackendProcess]:
        group = []
        for _ in range(n):
            folder = tmp_path / f"replica-{len(started)}"
            folder.mkdir()
            backend = BackendProcess(folder, {**SHARED_ENV, **(env or {})}, database_url=database_url)
            started.append(backend.start())
            group.append(backend)
        return group

    yield start
    for backend in started:
        backend.stop()
    assert check(database_url).returncode == 0


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        fake.webhook_timeout = 10
        yield fake


def stripe_env(fake: FakeStripe) -> dict[str, str]:
    return {"STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_API_BASE": fake.url}


def check(database_url: str) -> CommandResult:
    r = run_command(["check"], {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                "CREDITDESK_DATABASE_URL": database_url})
    assert "the ledger adds up" in r.stdout, r.stdout + r.stderr
    return r


def post_event(fake: FakeStripe, event: dict[str, Any], backend: BackendProcess) -> int:
    body = fake.payload(event)
    return fake.post_webhook(body, fake.sign(body), url=f"{backend.url}/api/webhooks/stripe")


def grants(backend: BackendProcess, session_id: str) -> int:
    return backend.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE type = 'purchase' AND reference = ?",
                         session_id)[0]["n"]


def run_all_at_once(jobs: list[Callable[[], object]], threads: int = 24) -> list[object]:
    """Run the jobs in a shuffled order from ``threads`` threads, released together once all are queued."""
    random.Random(7).shuffle(jobs)
    go = threading.Event()

    def run(job: Callable[[], object]) -> object:
        go.wait()
        return job()

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(run, job) for job in jobs]
        go.set()
        return [future.result() for future in futures]


def test_duplicate_webhooks_over_three_replicas_racing_verify_and_the_success_page_grant_once(
    replicas: Replicas, fake_stripe: FakeStripe
) -> None:
    fake = fake_stripe
    backends = replicas(3, stripe_env(fake))
    users = [Api(backends[n].url).register() for n in range(3)]
    packs = ("starter", "standard", "pro")
    orders = [(users[n % 3], packs[n % 3], users[n % 3].checkout(packs[n % 3])["sessionId"]) for n in range(9)]
    events = [fake.pay(session_id, deliver=False) for _, _, session_id in orders]

    jobs: list[Callable[[], object]] = []
    for (api, _, session_id), event in zip(orders, events, strict=True):
        for backend in backends:
            jobs += [lambda e=event, b=backend: ("webhook", post_event(fake, e, b))] * 2
            jobs.append(lambda a=api, b=backend, s=session_id: ("verify", Api(b.url, a.token).verify(s).status_code))
            jobs.append(lambda b=backend, s=session_id: ("success", requests.get(
                f"{b.url}/account/credits/success", params={"session_id": s}, timeout=60).status_code))
    answers = run_all_at_once(jobs)

    assert {answer for answer in answers} == {("webhook", 200), ("verify", 200), ("success", 200)}
    for _, _, session_id in orders:
        assert grants(backends[0], session_id) == 1
    credits = {"starter": 100, "standard": 550, "pro": 1200}
    for n, api in enumerate(users):
        assert api.balance() == 3 * credits[packs[n]]
    assert backends[0].query("SELECT COUNT(*) AS n FROM webhook_events")[0]["n"] == len(events)
    assert backends[0].ledger_problems() == []


def test_refunds_and_disputes_racing_their_grant_on_two_replicas_are_clawed_back_every_time(
    replicas: Replicas, fake_stripe: FakeStripe
) -> None:
    """The grant on one replica (its webhook, or verify-payment), the full refund or dispute on the other, at once."""
    fake = fake_stripe
    backends = replicas(2, stripe_env(fake))
    users = [Api(backends[0].url).register() for _ in range(2)]  # within the checkout limit of each
    races = []
    for n in range(18):
        api = users[n % 2]
        session_id = api.checkout("standard")["sessionId"]
        paid = fake.pay(session_id, deliver=False)
        if n % 3 == 2:
            taken = fake.open_dispute(session_id, deliver=False).event("charge.dispute.created")
        else:
            taken = fake.create_refund(session_id, 2500, deliver=False).event(
                "refund.created" if n % 3 == 0 else "charge.refunded")
        grant: Callable[[], object] = (
            (lambda e=paid: post_event(fake, e, backends[0])) if n % 2 == 0
            else (lambda s=session_id, a=api: Api(backends[0].url, a.token).verify(s).status_code))
        races.append((session_id, grant, lambda e=taken: post_event(fake, e, backends[1])))
    for _, grant, take in races:
        assert run_all_at_once([grant, take], threads=2) == [200, 200]
    statuses = {row["session_id"]: row["status"] for row in backends[0].query("SELECT session_id, status FROM orders")}
    assert [api.balance() for api in users] == [0, 0], statuses
    assert sorted(statuses.values()) == ["disputed"] * 6 + ["refunded"] * 12
    for session_id, _, _ in races:
        assert grants(backends[0], session_id) == 1


def test_spends_over_three_replicas_never_take_more_than_the_balance(replicas: Replicas) -> None:
    backends = replicas(3)
    api = Api(backends[0].url).register()
    checkout = api.checkout("starter")  # 100 credits
    requests.post(checkout["url"] + "/pay", timeout=30)
    assert api.balance() == 100

    def spend(backend: BackendProcess, key: str) -> tuple[str, int, Any]:
        r = Api(backend.url, api.token).post("/api/credits/spend", json={"amount": 7, "idempotencyKey": key})
        return key, r.status_code, r.json()

    jobs: list[Callable[[], object]] = [
        lambda n=n: spend(backends[n % 3], f"distinct-{n}") for n in range(30)
    ] + [lambda n=n: spend(backends[n % 3], "one-key-everywhere") for n in range(9)]
    answers = run_all_at_once(jobs)

    assert {status for _, status, _ in answers} <= {200, 402}
    same_key = [body for key, status, body in answers if key == "one-key-everywhere" and status == 200]
    assert len({body["transactionId"] for body in same_key}) <= 1  # answered as the first time, spent once
    spent = {key for key, status, _ in answers if status == 200}
    assert len(spent) == 14  # 14 x 7 = 98 of 100; a 15th would overdraw
    assert api.balance() == 2
    spends = backends[0].query("SELECT COUNT(*) AS n FROM ledger_entries WHERE type = 'spend' AND user_id = ?",
                               api.user["id"])
    assert spends[0]["n"] == 14
    # The usage dashboard's running sums, kept by each replica in the spend's transaction, add up too.
    assert backends[0].ledger_problems() == []
    totals = Api(backends[1].url, api.token).get("/api/credits/usage").json()["totals"]
    assert (totals["spent"], totals["purchased"], totals["closingBalance"]) == (98, 100, 2)


def test_spends_over_three_replicas_never_pass_a_daily_cap(replicas: Replicas) -> None:
    backends = replicas(3)
    api = Api(backends[0].url).register()
    checkout = api.checkout("pro")  # 1200 credits: the cap, not the balance, is what stops these spends
    requests.post(checkout["url"] + "/pay", timeout=30)
    r = Api(backends[1].url, api.token).request("PUT", "/api/credits/controls", json={"caps": {"day": 100}})
    assert r.status_code == 200, r.text

    def spend(n: int) -> tuple[int, str | None]:
        r = Api(backends[n % 3].url, api.token).post("/api/credits/spend",
                                                     json={"amount": 7, "idempotencyKey": f"capped-{n}"})
        return r.status_code, r.json().get("error", {}).get("code")

    answers = run_all_at_once([lambda n=n: spend(n) for n in range(30)])
    assert sorted(answers, key=str) == sorted([(200, None)] * 14 + [(403, "spend_cap_reached")] * 16, key=str)
    assert api.balance() == 1200 - 98  # 14 x 7 = 98 of the day's 100


def test_holds_over_two_replicas_close_once_and_never_take_the_available_balance_below_zero(
    replicas: Replicas
) -> None:
    backends = replicas(2)
    api = Api(backends[0].url).register()
    checkout = api.checkout("starter")  # 100 credits
    requests.post(checkout["url"] + "/pay", timeout=30)
    on = [Api(backend.url, api.token) for backend in backends]

    # Holds and spends racing on both replicas: 9 a hold, 7 a spend, never more than the 100 available.
    def act(n: int) -> tuple[str, int, Any]:
        if n % 3 == 0:
            r = on[n % 2].post("/api/credits/spend", json={"amount": 7, "idempotencyKey": f"spend-{n}"})
            return "spend", r.status_code, r.json()
        r = on[n % 2].post("/api/credits/holds", json={"amount": 9, "idempotencyKey": f"hold-{n}"})
        return "hold", r.status_code, r.json()

    answers = run_all_at_once([lambda n=n: act(n) for n in range(30)])
    assert {status for _, status, _ in answers} <= {200, 201, 402}, answers
    spent = 7 * sum(1 for kind, status, _ in answers if kind == "spend" and status == 200)
    held = [body["id"] for kind, status, body in answers if kind == "hold" and status == 201]
    listed = on[1].get("/api/credits/holds").json()
    assert (listed["reserved"], api.balance()) == (9 * len(held), 100 - spent)
    assert 0 <= listed["available"] < 7  # full: the refused ones were refused for want of credits

    # Every hold settled and voided from both replicas at once: each closes once.
    def close(n: int) -> tuple[str, int]:
        hold_id = held[n % len(held)]
        api = on[n % 2]
        if (n // len(held)) % 2:
            return hold_id, api.post(f"/api/credits/holds/{hold_id}/void", json={}).status_code
        return hold_id, api.post(f"/api/credits/holds/{hold_id}/settle", json={"amount": 5}).status_code

    closes = run_all_at_once([lambda n=n: close(n) for n in range(4 * len(held))])
    for hold_id in held:
        assert sorted(status for h, status in closes if h == hold_id) == [200, 409, 409, 409], closes
    settled = backends[0].query("SELECT COUNT(*) AS n FROM holds WHERE status = 'settled' AND user_id = ?",
                                api.user["id"])[0]["n"]
    assert api.balance() == 100 - spent - 5 * settled
    assert on[0].get("/api/credits/holds").json()["reserved"] == 0
    assert backends[0].ledger_problems() == []


def test_a_replica_killed_mid_storm_loses_and_doubles_nothing(replicas: Replicas, fake_stripe: FakeStripe) -> None:
    fake = fake_stripe
    backends = replicas(3, stripe_env(fake))
    users = [Api(backends[0].url).register() for _ in range(3)]
    sessions = [users[n % 3].checkout("starter")["sessionId"] for n in range(30)]
    events = [fake.pay(session_id, deliver=False) for session_id in sessions]
    delivered = threading.Semaphore(0)
    victim = backends[1]

    def deliver(n: int) -> int:
        """As Stripe does: the first try goes where the proxy sends it; a failure is retried until a 2xx."""
        event = events[n // 3]
        for attempt in range(20):
            status = post_event(fake, event, backends[(n + attempt) % 3])
            if 200 <= status < 300:
                delivered.release()
                return attempt
        return -1

    def kill_when_under_way() -> None:
        for _ in range(15):
            delivered.acquire(timeout=20)
        victim.kill()  # SIGKILL: its transactions in flight are rolled back by PostgreSQL

    killer = threading.Thread(target=kill_when_under_way)
    killer.start()
    attempts = run_all_at_once([lambda n=n: deliver(n) for n in range(len(events) * 3)], threads=9)
    killer.join()

    assert victim.proc is not None and victim.proc.poll() is not None
    assert -1 not in attempts and max(attempts) >= 1  # every event got through, some only on a retry
    for session_id in sessions:
        assert grants(backends[0], session_id) == 1
    for api in users:
        assert Api(backends[2].url, api.token).balance() == 1000
    assert backends[0].ledger_problems() == []


def test_a_rate_limit_holds_across_replicas_with_redis(replicas: Replicas, redis_server: RedisServer) -> None:
    redis_server.flush()
    backends = replicas(2, {"CREDITDESK_REDIS_URL": redis_server.url})
    api = Api(backends[0].url).register()
    codes = [Api(backends[n % 2].url, api.token).post("/api/billing/checkout", json={"packId": "starter"}).status_code
             for n in range(11)]
    assert codes == [200] * 10 + [429]  # 10 a minute per user, wherever the requests land


def test_without_redis_each_replica_counts_alone(replicas: Replicas) -> None:
    backends = replicas(2)
    api = Api(backends[0].url).register()
    codes = [Api(backends[n % 2].url, api.token).post("/api/billing/checkout", json={"packId": "starter"}).status_code
             for n in range(12)]
    assert codes == [200] * 12  # what CREDITDESK_REDIS_URL is for: two replicas allowed twice the limit


def test_while_redis_is_down_each_replica_limits_on_its_own_and_nothing_fails(
    replicas: Replicas, redis_server: RedisServer
) -> None:
    from backend.ratelimit import REDIS_RETRY_SECONDS

    redis_server.flush()
    backends = replicas(2, {"CREDITDESK_REDIS_URL": redis_server.url})
    api = Api(backends[0].url).register()
    redis_server.stop()
    try:
        codes = [Api(backends[0].url, api.token).post("/api/billing/checkout", json={"packId": "starter"}).status_code
                 for _ in range(11)]
        assert codes == [200] * 10 + [429]  # the limit still holds, counted by this replica alone
        assert "rate limits: Redis does not answer" in backends[0].log_with("rate limits: Redis does not answer")
    finally:
        redis_server.start()
    time.sleep(REDIS_RETRY_SECONDS + 0.5)
    other = Api(backends[1].url).register()
    codes = [Api(backends[n % 2].url, other.token).post("/api/billing/checkout", json={"packId": "starter"}).status_code
             for n in range(11)]
    assert codes == [200] * 10 + [429]  # shared again


def test_the_automatic_reconcile_runs_on_one_replica_at_a_time(
    replicas: Replicas, fake_stripe: FakeStripe, database_url: str
) -> None:
    from backend.db import Database
    from backend.reconcile import LEADER_LOCK

    def runs() -> int:
        return backends[0].query("SELECT COUNT(*) AS n FROM reconcile_runs WHERE trigger = 'interval'")[0]["n"]

    held_elsewhere = Database(database_url)
    try:
        with held_elsewhere.leader_lock(LEADER_LOCK) as leading:  # another replica is reconciling
            assert leading
            backends = replicas(2, {**stripe_env(fake_stripe), "CREDITDESK_RECONCILE_INTERVAL": "1"})
            deadline = time.monotonic() + 20
            while not all("outcome=skipped" in b.log() for b in backends) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert all("reason=another_replica_reconciling" in b.log() for b in backends)
            assert runs() == 0
        deadline = time.monotonic() + 20
        while runs() < 3 and time.monotonic() < deadline:  # now they take turns, one at a time
            time.sleep(0.2)
        assert runs() >= 3
    finally:
        held_elsewhere.close()
