"""Webhook throughput: the real backend against a signature-check-and-one-insert baseline.

Delivers signed ``checkout.session.completed`` events for distinct, seeded orders over HTTP on
loopback, ``--concurrency`` at a time, to the real backend (``python -m backend serve``, Stripe
mode) and, in the same run, the same load to a minimal FastAPI endpoint that only verifies the
signature and inserts one row into SQLite (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``, one
connection per thread): the floor any real handler pays. Prints events/s and p50/p99 latency for
both, their ratio, and checks that the backend's ledger adds up afterwards.

    .venv/bin/python bench/webhooks.py [--events 2000] [--concurrency 8] [--rounds 4]

Exits 1 if any delivery is not answered 2xx or the ledger is wrong after the run.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import hmac
import json
import math
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from fastapi import FastAPI, Request, Response  # module level: the route's annotations resolve here

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "stripe-fixtures" / "fixtures3-subset.json"
WEBHOOK_SECRET = "whsec_bench_0123456789abcdef0123456789abcdef"  # noqa: S105 (a test secret)
WARMUP_EVENTS = 50
USERS = 5
AIM = 0.5
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
        "api_version": "2025-07-30.basil",
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
    """Verify the signature, insert one row: nothing else."""
    import stripe
    from starlette.concurrency import run_in_threadpool

    local = threading.local()

    def connection() -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            local.conn = conn
        return conn

    setup = connection()
    setup.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, received_at REAL NOT NULL,"
                  " size INTEGER NOT NULL)")

    def insert(size: int) -> None:
        conn = connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO events (received_at, size) VALUES (?, ?)", (time.time(), size))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post(BASELINE_PATH)
    async def webhook(request: Request) -> Response:
        payload = await request.body()
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode("utf-8", errors="replace"), request.headers.get("stripe-signature", ""),
                WEBHOOK_SECRET, 300,
            )
        except stripe.SignatureVerificationError:
            return Response('{"error": "invalid_signature"}', status_code=400, media_type="application/json")
        await run_in_threadpool(insert, len(payload))
        return Response('{"received": true}', media_type="application/json")

    return app


def serve_baseline(db_path: Path) -> int:
    """Run the baseline on a free loopback port; the first stdout line says where, like the backend's."""
    import uvicorn

    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it h11's separate header and body writes meet Nagle and delayed ACKs (~40 ms a response).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    app = baseline_app(db_path)
    print(f"Baseline listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, server_header=False)
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


# --- load ------------------------------------------------------------------------------------------


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


def deliver(name: str, url: str, payloads: list[bytes], sessions: list[requests.Session]) -> Result:
    """POST every payload, signed now, with one thread per session; measures wall time and latencies."""
    work: queue.SimpleQueue[tuple[bytes, str]] = queue.SimpleQueue()
    for payload in payloads:
        work.put((payload, sign(payload)))
    latencies: list[list[float]] = [[] for _ in sessions]
    failures: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(len(sessions) + 1)

    def worker(index: int) -> None:
        session, mine = sessions[index], latencies[index]
        start_gate.wait()
        while True:
            try:
                payload, signature = work.get_nowait()
            except queue.Empty:
                return
            headers = {"Stripe-Signature": signature, "Content-Type": "application/json"}
            began = time.perf_counter()
            try:
                response = session.post(url, data=payload, headers=headers, timeout=60)
                status, body = response.status_code, response.text
            except requests.RequestException as exc:
                status, body = 0, repr(exc)
            mine.append(time.perf_counter() - began)
            if not 200 <= status < 300:
                with lock:
                    failures.append(f"{status} {body[:200]}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(sessions))]
    for thread in threads:
        thread.start()
    start_gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    return Result(name, len(payloads), seconds, [x for chunk in latencies for x in chunk], failures)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_batch(child: Child, path: str, payloads: list[bytes], concurrency: int) -> Result:
    """One batch on fresh keep-alive sessions (an idle server may have closed the last batch's)."""
    sessions = [requests.Session() for _ in range(concurrency)]
    pid = child.proc.pid if child.proc is not None else 0
    try:
        before = cpu_seconds(pid)
        result = deliver(child.name, child.url + path, payloads, sessions)
        after = cpu_seconds(pid)
        if before is not None and after is not None:
            result.server_cpu = after - before
        return result
    finally:
        for session in sessions:
            session.close()


def merge(results: list[Result]) -> Result:
    """The rounds of one side as one result: total events over total time, all latencies."""
    cpu = [r.server_cpu for r in results]
    return Result(
        results[0].name, sum(r.events for r in results), sum(r.seconds for r in results),
        [x for r in results for x in r.latencies], [f for r in results for f in r.failures],
        None if None in cpu else sum(c for c in cpu if c is not None),
    )


def run_alternating(
    sides: list[tuple[Child, str]], warmup: list[bytes], payloads: list[bytes], concurrency: int, rounds: int
) -> list[Result]:
    """Warm up every side (not counted), then deliver the payloads in rounds, taking turns.

    Taking turns spreads whatever else the machine is doing over both sides alike, so the ratio
    is steadier than two back-to-back runs would give.
    """
    for child, path in sides:
        warm = run_batch(child, path, warmup, concurrency)
        if warm.failures:
            raise RuntimeError(f"{child.name} warm-up failed: {warm.failures[0]}")
    size = -(-len(payloads) // rounds)
    chunks = [payloads[i:i + size] for i in range(0, len(payloads), size)]
    done: dict[str, list[Result]] = {child.name: [] for child, _ in sides}
    for index, chunk in enumerate(chunks):
        order = sides if index % 2 == 0 else sides[::-1]
        for child, path in order:
            done[child.name].append(run_batch(child, path, chunk, concurrency))
    return [merge(done[child.name]) for child, _ in sides]


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="measured events per side (default 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="split the load into this many rounds, the two sides taking turns (default 4)")
    parser.add_argument("--baseline-server", metavar="DB", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_server is not None:
        return serve_baseline(args.baseline_server)
    if args.events < 1 or args.concurrency < 1 or args.rounds < 1:
        parser.error("--events, --concurrency and --rounds must be positive")

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
        print(f"{args.events} events (+{WARMUP_EVENTS} warm-up) of ~{size} bytes to each side, "
              f"{args.concurrency} at a time, on loopback, in {min(args.rounds, args.events)} alternating rounds",
              flush=True)

        backend = Child(
            "backend", [sys.executable, "-m", "backend", "serve", "--host", "127.0.0.1", "--port", "0"],
            child_env(CREDITDESK_DB=str(backend_db), STRIPE_SECRET_KEY="sk_test_bench",  # noqa: S106
                      STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE="http://127.0.0.1:9"),
            tmp / "backend.log",
        )
        baseline = Child(
            "baseline", [sys.executable, str(Path(__file__).resolve()), "--baseline-server", str(tmp / "base.sqlite3")],
            child_env(), tmp / "baseline.log",
        )
        try:
            baseline.start()
            backend.start()
            base, real = run_alternating(
                [(baseline, BASELINE_PATH), (backend, BACKEND_PATH)],
                warmup, measured, args.concurrency, min(args.rounds, args.events),
            )
        except RuntimeError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        finally:
            backend.stop()
            baseline.stop()

        print()
        print(base.line())
        print(real.line())
        ratio = real.rate / base.rate if base.rate else 0.0
        verdict = "meets" if ratio >= AIM else "BELOW"
        print(f"ratio (backend / baseline throughput): {ratio:.2f} ({verdict} the {AIM} aim)")

        problems, purchases, paid = check_ledger(backend_db, total)
        print(f"ledger: {purchases} purchase entries, {paid} paid orders (expected {total}); "
              + ("invariants hold" if not problems else f"{len(problems)} problem(s)"))
        for problem in problems[:20]:
            print(f"  {problem}")
        failed = False
        for result, child in ((base, baseline), (real, backend)):
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
