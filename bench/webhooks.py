"""Webhook throughput and latency: the real backend against a fair baseline, measured in the same run.

Two scenarios, each delivered to both servers over HTTP on loopback:

1. distinct signed ``checkout.session.completed`` events for seeded orders, ``--concurrency`` (8) at a
   time, in alternating rounds so that whatever else the machine does falls on both sides alike;
2. ``--duplicates`` (1,000) deliveries of one event already processed, ``--duplicate-concurrency``
   (32) at a time: Stripe's retries. A duplicate should not need the write lock.

The backend is ``python -m backend serve`` in Stripe mode. The baseline is the same stack doing the
least a webhook handler that keeps its events can: the same uvicorn set-up, logging and access log (one line
a delivery, as the backend's one line an event), FastAPI behind the same body limit, the same signature check
and parse (``backend.webhooks.verify``), then the event kept whole once: one row of its id, type, time and
body, ``INSERT ... ON CONFLICT DO NOTHING`` through the same ``Database`` (SQLAlchemy, ``BEGIN IMMEDIATE``,
``synchronous=FULL``) behind the same in-process write lock, on the same thread pool. What the backend does
beyond that is what protects money: the order read and locked, the ledger entry and balance, the order paid,
the purchase alert, the refunds that came first, the event's outcome (about a dozen statements in the one
transaction), and a look for a duplicate before queueing for the write lock. The load comes from a separate
process of asyncio keep-alive connections, pinned to its own CPU with the servers on the others, so that it
does not steal the servers' CPU.

Prints events/s, p50/p99 latency and server CPU per event for each side, the ratios, whether the
goals are met (issue 20: throughput at least 0.75 of the baseline's, p99 under 30 ms at 8 concurrent;
duplicates' p99 under 50 ms at 32), and checks that the backend's ledger adds up.

    .venv/bin/python bench/webhooks.py [--events 4000] [--concurrency 8] [--rounds 10] [--duplicates 1000]

Measured on 2 shared cores (2026-12-06, load average 1-1.8), eight runs, four of them alternating with the code of
that morning (32af77c): 0.76-0.80 of the baseline (median 0.78; 931-1,013 events/s against 1,207-1,298 in the last
four, p99 14.6-16.7 ms, duplicates' p99 12-17 ms), server CPU 0.97-1.21 ms an event against the baseline's
0.75-0.92, where that code gave 0.57-0.65 (1.23-1.71 ms). The host's noise moves one run by 0.05-0.1, so compare
by alternating with other code and by instructions: under callgrind, the route driven in process (ASGI, 8 at a
time; bench/instructions.py) cost 4.50M instructions an event against the baseline's 3.04M that morning, 4.21M since.
What closed the gap:

- a group commit's savepoints journal in memory on the writer (``PRAGMA temp_store=MEMORY``, backend.db): past
  64 KB SQLite spilled the sub-journal to a temporary file made and deleted per group, about 30 writes an event
  more than the commit's own (strace: 58 ``pwrite`` calls an event, then 27, the baseline's 9);
- the webhook's route one of the app's own, tried first (FastAPI 0.165 matches an included router's routes through
  a layer that walks the routers again per request: 81K instructions a delivery);
- the hot statements' Python around SQLite's work (backend.prepared: 87K), a grant's UPDATE of the order and INSERT
  of the entry answering only what is not known already (a wide row answered costs SQLite a copy into a
  temporary table), and a lock, not a threading.Event, to wake a writer waiting for its group.

Before (2026-12-05): 0.55-0.60 before group commit and the start-up heap frozen out of the collector's walks, then
0.66-0.73 after a grant's statements went from 13 to 9. What is left is the money work itself, about 1.1M
instructions a grant in its statements (the order read and locked with its buyer's billing details, the balance
moved, the entry, its grant, the quarter's sum, the order paid, the purchase alert, the event kept with its
outcome, and the event looked up before queueing and under the lock), against one INSERT for the baseline.

Exits 1 if any delivery is not answered 2xx or the ledger is wrong after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response  # module level: the route's annotations resolve here

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "stripe-fixtures" / "fixtures3-subset.json"
WEBHOOK_SECRET = "whsec_bench_0123456789abcdef0123456789abcdef"  # noqa: S105 (a test secret)
WARMUP_EVENTS = 50
USERS = 5
AIM_RATIO = 0.75
AIM_P99_MS = 30.0
DUPLICATE_AIM_P99_MS = 50.0
BACKEND_PATH = "/api/webhooks/stripe"
BASELINE_PATH = "/webhook"


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    """One pending order in the backend's database, paid for by one event."""

    n: int
    order_id: str
    user_id: int
    pack_id: str
    credits: int
    amount: int
    currency: str

    @property
    def session_id(self) -> str:
        return f"cs_test_bench_{self.n}"


from backend.payments.base import STRIPE_API_VERSION  # noqa: E402


def _session_template() -> dict[str, Any]:
    """Stripe's published ``checkout.session`` fixture, or a minimal stand-in without it."""
    try:
        return json.loads(FIXTURES.read_text(encoding="utf-8"))["checkout.session"]
    except (OSError, KeyError, ValueError):
        return {"object": "checkout.session", "mode": "payment", "livemode": False, "payment_method_types": ["card"]}


def build_event(template: dict[str, Any], seeded: Seeded) -> bytes:
    """A ``checkout.session.completed`` event that fulfilment accepts for this order, as JSON bytes."""
    session = copy.deepcopy(template)
    now = int(time.time())
    session.update({
        "id": seeded.session_id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_subtotal": seeded.amount,
        "amount_total": seeded.amount,
        # A purchase without a promotion code or tax, as the totals say (the fixture's own total_details hold
        # random figures: a discount or tax would have the backend read their names from Stripe after answering).
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "currency": seeded.currency,
        "client_reference_id": str(seeded.user_id),
        "metadata": {
            "userId": str(seeded.user_id), "packId": seeded.pack_id, "credits": str(seeded.credits),
            "orderId": seeded.order_id, "type": "credit_purchase",
        },
        "payment_intent": f"pi_bench_{seeded.n}",
        "created": now,
        "expires_at": now + 86400,
        "url": None,
    })
    event = {
        "id": f"evt_bench_{seeded.n}",
        "object": "event",
        # The pinned version, as the endpoint `stripe-setup` registers sends them (another version would be
        # decided on the session read from Stripe, which this bench does not run).
        "api_version": STRIPE_API_VERSION,
        "created": now,
        "data": {"object": session},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "checkout.session.completed",
    }
    return json.dumps(event).encode()


def sign(payload: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """The ``Stripe-Signature`` header Stripe sends for this exact body."""
    timestamp = int(time.time())
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# --- the backend's database ------------------------------------------------------------------------


def seed(db_path: Path, count: int) -> list[Seeded]:
    """Create a handful of users and ``count`` pending orders, each with its own Checkout Session."""
    import resources
    from backend import accounts, migrations, orders
    from backend.catalogue import Catalogue
    from backend.db import Database, utcnow
    from backend.orders import Order

    catalogue = Catalogue.load(resources.path("packs.toml"))
    db = Database(db_path)
    migrations.upgrade(db)
    try:
        users = [accounts.register(db, f"bench{i}@example.com", f"bench-password-{i}") for i in range(USERS)]
        seeded: list[Seeded] = []
        with db.transaction() as conn:
            for n in range(count):
                pack = catalogue.packs[n % len(catalogue.packs)]
                user = users[n % len(users)]
                item = Seeded(n, f"ord_bench_{n:06d}", user.id, pack.id, pack.credits, pack.amount, pack.currency)
                now = utcnow()
                orders.insert(conn, Order(
                    id=item.order_id, user_id=user.id, pack_id=pack.id, pack_name=pack.name, credits=pack.credits,
                    amount=pack.amount, currency=pack.currency, provider="stripe", session_id=item.session_id,
                    checkout_url=f"https://checkout.stripe.com/c/pay/{item.session_id}", return_url=None,
                    state=None, status=orders.PENDING, payment_intent=None, amount_refunded=0,
                    credits_clawed_back=0, created_at=now, updated_at=now,
                ))
                seeded.append(item)
        return seeded
    finally:
        db.close()


def check_ledger(db_path: Path, expected: int) -> tuple[list[str], int, int]:
    """The ledger's problems, the number of bench purchase entries and of paid bench orders."""
    from sqlalchemy import text

    from backend import ledger
    from backend.db import Database

    db = Database(db_path)
    try:
        with db.read() as conn:
            problems = ledger.check_invariants(conn)
            purchases = conn.execute(text(
                "SELECT COUNT(*) FROM ledger_entries WHERE type = 'purchase' AND reference LIKE 'cs_test_bench_%'"
            )).scalar_one()
            paid = conn.execute(text(
                "SELECT COUNT(*) FROM orders WHERE status = 'paid' AND session_id LIKE 'cs_test_bench_%'"
            )).scalar_one()
    finally:
        db.close()
    if purchases != expected:
        problems.append(f"{purchases} purchase entries, expected {expected}")
    if paid != expected:
        problems.append(f"{paid} paid orders, expected {expected}")
    return problems, purchases, paid


# --- the baseline server ---------------------------------------------------------------------------


def baseline_app(db_path: Path) -> FastAPI:
    """Verify the signature and parse the event as the backend does, then keep the event whole once (its id, type,
    time and body in one row, a duplicate ignored), as the backend writes: nothing else."""
    from sqlalchemy import text
    from starlette.concurrency import run_in_threadpool

    from backend import webhooks
    from backend.api.app import MAX_BODY_BYTES, BodyLimit
    from backend.db import Database, utcnow
    from backend.errors import CreditdeskError

    db = Database(db_path)
    with db.transaction() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, type TEXT NOT NULL,"
                          " received_at TEXT NOT NULL, body TEXT NOT NULL)"))
    keep = text("INSERT INTO events (id, type, received_at, body) VALUES (:id, :type, :at, :body)"
                " ON CONFLICT DO NOTHING")

    def insert(event: dict[str, Any], payload: bytes) -> None:
        with db.transaction() as conn:
            conn.execute(keep, {"id": event["id"], "type": event["type"], "at": utcnow(),
                                "body": payload.decode("utf-8", errors="replace")})

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    @app.post(BASELINE_PATH)
    async def webhook(request: Request) -> Response:
        payload = await request.body()
        try:
            event = webhooks.verify(payload, request.headers.get("stripe-signature", ""), WEBHOOK_SECRET)
        except CreditdeskError:
            return Response('{"error": "invalid_signature"}', status_code=400, media_type="application/json")
        await run_in_threadpool(insert, event, payload)
        return Response('{"received": true}', media_type="application/json")

    return app


def serve_baseline(db_path: Path) -> int:
    return serve_app(lambda: baseline_app(db_path))


def serve_app(make_app: Any) -> int:
    """Run a baseline app as ``creditdesk-backend serve`` runs the backend (its logging, uvicorn's settings); the
    first stdout line says where (also used by ``bench/spends.py``)."""
    import logging

    import uvicorn

    from backend import cli, logs

    logs.configure(logging.INFO, in_background=True)  # the backend's own logging, as serve sets it up
    # IPPROTO_TCP, as serve does: asyncio sets TCP_NODELAY only on sockets whose proto says TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    app = make_app()
    print(f"Baseline listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_config=None, log_level="info", access_log=True, server_header=False,
                            proxy_headers=False, ws="none")
    cli.settle_heap()  # as serve does
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT that stopped it, after shutdown
        uvicorn.Server(config).run(sockets=[sock])
    return 0


# --- child processes -------------------------------------------------------------------------------


@dataclass
class Child:
    """A server in a child process that prints ``... listening on URL ...`` first on stdout."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    url: str = ""
    proc: subprocess.Popen[str] | None = None
    _log: Any = field(default=None, repr=False)

    def start(self) -> Child:
        self._log = self.log_path.open("a")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     env=self.env, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {line!r}\n{self.log_path.read_text()[-3000:]}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        self._wait_until_accepting()
        return self

    def _wait_until_accepting(self, timeout: float = 15.0) -> None:
        """The line comes before uvicorn listens on the socket: wait until a connection goes through."""
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or (self.proc is not None and self.proc.poll() is not None):
                    self.stop()
                    raise RuntimeError(f"{self.name} never accepted connections\n"
                                       f"{self.log_path.read_text()[-3000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


def child_env(**extra: str) -> dict[str, str]:
    """This environment without any Stripe or Creditdesk settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "CREDITDESK_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# --- load: a separate process of asyncio keep-alive connections -------------------------------------


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    latencies: list[float]
    failures: list[str]
    server_cpu: float | None = None  # CPU seconds the server process used, where /proc tells

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
        return ordered[rank - 1] * 1000

    def line(self) -> str:
        return (f"{self.name:<9} {self.events:>6} events  {self.seconds:7.2f} s  {self.rate:8.1f} events/s  "
                f"p50 {self.percentile(50):7.1f} ms  p99 {self.percentile(99):7.1f} ms  "
                f"server CPU {self.cpu_per_event}  failures {len(self.failures)}")

    @property
    def cpu_per_event(self) -> str:
        return "n/a" if self.server_cpu is None else f"{self.server_cpu / self.events * 1000:5.2f} ms/event"


async def _load(url: str, requests_: list[tuple[dict[str, str], bytes]], concurrency: int) -> dict[str, Any]:
    """Send every request (its own headers, a JSON body), ``concurrency`` connections at a time, each request
    after the last answer."""
    host, port = url.removeprefix("http://").split("/", 1)[0].rsplit(":", 1)
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    todo = list(reversed(requests_))
    latencies: list[float] = []
    failures: list[str] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while todo:
                headers, body = todo.pop()
                extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
                head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                        f"{extra}Content-Length: {len(body)}\r\n\r\n").encode()
                began = time.perf_counter()
                writer.write(head + body)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                answer = await reader.readexactly(length)
                latencies.append(time.perf_counter() - began)
                status = int(status_line.split()[1]) if status_line else 0
                if not 200 <= status < 300:
                    failures.append(f"{status} {answer[:200].decode('utf-8', 'replace')}")
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(min(concurrency, len(requests_)))))
    return {"seconds": time.perf_counter() - began, "latencies": latencies, "failures": failures}


def run_load_client(job: Path) -> int:
    """``--load-client JOB``: read the job (url, concurrency, requests), run it, write the result beside it."""
    spec = json.loads(job.read_text())
    requests_ = [(headers, body.encode()) for headers, body in spec["requests"]]
    result = asyncio.run(_load(spec["url"], requests_, spec["concurrency"]))
    job.with_suffix(".result").write_text(json.dumps(result))
    return 0


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Cpus:
    """Which CPUs the servers and the load client get: the client one of its own when there are two or more."""

    servers: set[int] | None
    client: set[int] | None

    @classmethod
    def split(cls) -> Cpus:
        try:
            available = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return cls(None, None)
        if len(available) < 2:
            return cls(None, None)
        return cls(set(available[:-1]), {available[-1]})

    def describe(self) -> str:
        if self.servers is None:
            return "not pinned (one CPU, or no affinity on this system)"
        return f"servers on CPU {sorted(self.servers)}, load client on CPU {sorted(self.client or ())}"


def pin(pid: int, cpus: set[int] | None) -> None:
    if cpus is not None:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():  # every thread, already started ones too
                os.sched_setaffinity(int(task.name), cpus)


def run_batch(child: Child, path: str, payloads: list[bytes], concurrency: int, cpus: Cpus, tmp: Path) -> Result:
    """One batch of signed events from a fresh load-client process; signatures are made just before it starts."""
    return run_job(child, path, [({"Stripe-Signature": sign(p)}, p) for p in payloads], concurrency, cpus, tmp)


def run_job(child: Child, path: str, requests_: list[tuple[dict[str, str], bytes]], concurrency: int, cpus: Cpus,
            tmp: Path) -> Result:
    """POST each request (headers, JSON body) from a fresh load-client process pinned to its own CPU, with the
    server's CPU time measured around it (also used by ``bench/spends.py``)."""
    job = tmp / f"job-{child.name}-{time.monotonic_ns()}.json"
    job.write_text(json.dumps({"url": child.url + path, "concurrency": concurrency,
                               "requests": [[headers, body.decode()] for headers, body in requests_]}))
    pid = child.proc.pid if child.proc is not None else 0
    pin(pid, cpus.servers)
    before = cpu_seconds(pid)
    client = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--load-client", str(job)],
                              env=child_env(), cwd=ROOT)
    pin(client.pid, cpus.client)
    if client.wait(600) != 0:
        raise RuntimeError(f"the load client failed against {child.name}")
    after = cpu_seconds(pid)
    data = json.loads(job.with_suffix(".result").read_text())
    result = Result(child.name, len(requests_), data["seconds"], data["latencies"], data["failures"])
    if before is not None and after is not None:
        result.server_cpu = after - before
    return result


def merge(results: list[Result]) -> Result:
    """The rounds of one side as one result: total events over total time, all latencies."""
    cpu = [r.server_cpu for r in results]
    return Result(
        results[0].name, sum(r.events for r in results), sum(r.seconds for r in results),
        [x for r in results for x in r.latencies], [f for r in results for f in r.failures],
        None if None in cpu else sum(c for c in cpu if c is not None),
    )


def run_alternating(
    sides: list[tuple[Child, str]], payloads: list[bytes], concurrency: int, rounds: int, cpus: Cpus, tmp: Path
) -> list[Result]:
    """Deliver the payloads in rounds, the sides taking turns, so that noise falls on both alike."""
    size = -(-len(payloads) // rounds)
    chunks = [payloads[i:i + size] for i in range(0, len(payloads), size)]
    done: dict[str, list[Result]] = {child.name: [] for child, _ in sides}
    for index, chunk in enumerate(chunks):
        order = sides if index % 2 == 0 else sides[::-1]
        for child, path in order:
            done[child.name].append(run_batch(child, path, chunk, concurrency, cpus, tmp))
    return [merge(done[child.name]) for child, _ in sides]


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="measured distinct events per side (default 4000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    # Many short rounds: on a shared machine noise comes in bursts of seconds, and short turns spread a burst over
    # both sides (4 rounds of 500 events gave ratios from 0.52 to 0.73 in one hour; 10 of 400, 0.61 to 0.64).
    parser.add_argument("--rounds", type=int, default=10,
                        help="split the load into this many rounds, the two sides taking turns (default 10)")
    parser.add_argument("--duplicates", type=int, default=1000, help="deliveries of one event (default 1000)")
    parser.add_argument("--duplicate-concurrency", type=int, default=32, help="their concurrency (default 32)")
    parser.add_argument("--baseline-server", metavar="DB", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--load-client", metavar="JOB", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_server is not None:
        return serve_baseline(args.baseline_server)
    if args.load_client is not None:
        return run_load_client(args.load_client)
    if min(args.events, args.concurrency, args.rounds, args.duplicates, args.duplicate_concurrency) < 1:
        parser.error("every count must be positive")

    with tempfile.TemporaryDirectory(prefix="creditdesk-bench-") as tmp_name:
        tmp = Path(tmp_name)
        backend_db = tmp / "backend.sqlite3"
        total = WARMUP_EVENTS + args.events
        print(f"seeding {total} pending orders for {USERS} users ...", flush=True)
        seeded = seed(backend_db, total)
        template = _session_template()
        bodies = [build_event(template, item) for item in seeded]
        warmup, measured = bodies[:WARMUP_EVENTS], bodies[WARMUP_EVENTS:]
        size = sum(map(len, bodies)) // len(bodies)
        cpus = Cpus.split()
        print(f"{args.events} events (+{WARMUP_EVENTS} warm-up) of ~{size} bytes to each side, "
              f"{args.concurrency} at a time, on loopback, in {min(args.rounds, args.events)} alternating rounds; "
              f"then {args.duplicates} duplicates of one event, {args.duplicate_concurrency} at a time; "
              f"{cpus.describe()}", flush=True)

        backend = Child(
            "backend", [sys.executable, "-m", "backend", "serve", "--host", "127.0.0.1", "--port", "0"],
            child_env(CREDITDESK_DB=str(backend_db), STRIPE_SECRET_KEY="sk_test_bench",  # noqa: S106
                      STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE="http://127.0.0.1:9",
                      # No automatic reconcile: it would re-check the seeded orders with a Stripe that is not
                      # there, work the baseline does not do and that is not the webhook's.
                      CREDITDESK_RECONCILE_INTERVAL="0"),
            tmp / "backend.log",
        )
        baseline = Child(
            "baseline", [sys.executable, str(Path(__file__).resolve()), "--baseline-server", str(tmp / "base.sqlite3")],
            child_env(), tmp / "baseline.log",
        )
        sides = [(baseline, BASELINE_PATH), (backend, BACKEND_PATH)]
        try:
            baseline.start()
            backend.start()
            for child, path in sides:  # warm up (not counted)
                warm = run_batch(child, path, warmup, args.concurrency, cpus, tmp)
                if warm.failures:
                    raise RuntimeError(f"{child.name} warm-up failed: {warm.failures[0]}")
            base, real = run_alternating(sides, measured, args.concurrency, min(args.rounds, args.events), cpus, tmp)
            # Duplicates: the first event again (granted in the warm-up), as Stripe's retries send it.
            copies = [bodies[0]] * args.duplicates
            dup_base, dup_real = (run_batch(child, path, copies, args.duplicate_concurrency, cpus, tmp)
                                  for child, path in sides)
        except RuntimeError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        finally:
            backend.stop()
            baseline.stop()

        print()
        print(f"distinct events, {args.concurrency} at a time:")
        print("  " + base.line())
        print("  " + real.line())
        ratio = real.rate / base.rate if base.rate else 0.0
        print(f"  throughput ratio (backend / baseline): {ratio:.2f} ({verdict(ratio >= AIM_RATIO)} the "
              f"{AIM_RATIO} aim); p99 {real.percentile(99):.1f} ms ({verdict(real.percentile(99) < AIM_P99_MS)} "
              f"the {AIM_P99_MS:.0f} ms aim)")
        dup_base.name, dup_real.name = "baseline", "backend"
        print(f"duplicates of one event, {args.duplicate_concurrency} at a time:")
        print("  " + dup_base.line())
        print("  " + dup_real.line())
        dup_ratio = dup_real.rate / dup_base.rate if dup_base.rate else 0.0
        print(f"  throughput ratio (backend / baseline): {dup_ratio:.2f}; p99 {dup_real.percentile(99):.1f} ms "
              f"({verdict(dup_real.percentile(99) < DUPLICATE_AIM_P99_MS)} the {DUPLICATE_AIM_P99_MS:.0f} ms aim)")

        problems, purchases, paid = check_ledger(backend_db, total)
        print(f"ledger: {purchases} purchase entries, {paid} paid orders (expected {total}); "
              + ("invariants hold" if not problems else f"{len(problems)} problem(s)"))
        for problem in problems[:20]:
            print(f"  {problem}")
        failed = False
        for result, child in ((base, baseline), (real, backend), (dup_base, baseline), (dup_real, backend)):
            for failure in result.failures[:5]:
                print(f"  {result.name} failure: {failure}")
            if result.failures:
                failed = True
                print(f"  {len(result.failures)} {result.name} deliveries failed; its log's warnings and errors:")
                lines = child.log_path.read_text().splitlines()
                notable = [line for line in lines if " WARNING " in line or " ERROR " in line]
                print("\n".join("    " + line for line in notable[:15]))
        return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
