"""The backend as one and as two replicas on PostgreSQL, and webhooks on PostgreSQL beside SQLite.

Part 1, mixed load: 50 users (threads, in two load processes so that the load is not one GIL) sign in
(all at once, measured apart: each is an argon2 verification, 64 MiB and tens of milliseconds of CPU by
design), then loop on what the desktop app and its host application do: every few seconds a purchase
(checkout, pay on the stub checkout page, verify-payment), and otherwise history, a spend of one credit
and the balance. The same load runs against one replica and against two replicas on one PostgreSQL
database (requests spread round-robin, as a proxy would), in alternating rounds of the same length.
Prints requests/s and latencies of both, the ratio, and the CPU that the replicas, PostgreSQL and the
load took, so that a ratio below the aim says what limited it.

Part 2, webhooks: bench/webhooks.py's signed ``checkout.session.completed`` events against the backend on
SQLite and on PostgreSQL (the same events, each side its own seeded database), alternating rounds;
prints events/s of both and the ratio.

PostgreSQL runs with its durable defaults (fsync, synchronous commit), as SQLite runs with
synchronous=FULL: a granted payment survives a power cut on both. Started from the distribution's
binaries in a temporary folder unless ``--database-url`` names a server to use (an empty database).

    .venv/bin/python bench/replicas.py [--seconds 15] [--rounds 4] [--users 50] [--events 1000]

Exits 1 if a request fails or the ledger does not add up afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import webhooks as webhook_bench  # noqa: E402  (bench/webhooks.py: its events, servers and load)

AIM = 1.6
PASSWORD = "bench password 0123"  # noqa: S105 (a bench account's)
PURCHASE_EVERY_SECONDS = 8.0  # under the contract's 10 checkouts a minute per user
LOAD_PROCESSES = 2


# --- the load (runs in child processes: python bench/replicas.py --load-worker JSON) ---------------------


def user_loop(urls: list[str], token: str, deadline: float, out: dict[str, list[float]], failures: list[str]) -> None:
    """One signed-in user: purchases every few seconds, and history, spend and balance in between."""
    http = requests.Session()
    turn = secrets.randbelow(len(urls))

    def call(name: str, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        nonlocal turn
        url = urls[turn % len(urls)] + path  # round robin over the replicas, request by request
        turn += 1
        began = time.perf_counter()
        try:
            r = http.request(method, url, timeout=60, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            failures.append(f"{name}: {exc!r}"[:200])
            return None
        out.setdefault(name, []).append(time.perf_counter() - began)
        if r.status_code >= 400:
            failures.append(f"{name}: {r.status_code} {r.text[:150]}")
        return r

    http.headers["Authorization"] = f"Bearer {token}"
    next_purchase = time.monotonic()
    keys = 0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_purchase:
            next_purchase = time.monotonic() + PURCHASE_EVERY_SECONDS
            r = call("checkout", "POST", "/api/billing/checkout", json={"packId": "starter"})
            if r is not None and r.status_code == 200:
                session_id = r.json()["sessionId"]
                call("pay", "POST", f"/stub/checkout/{session_id}/pay")
                call("verify", "GET", "/api/billing/verify-payment", params={"session_id": session_id})
            continue
        call("history", "GET", "/api/credits/transactions", params={"limit": 20})
        keys += 1
        call("spend", "POST", "/api/credits/spend",
             json={"amount": 1, "idempotencyKey": f"bench-{secrets.token_hex(6)}-{keys}", "description": "bench"})
        call("balance", "GET", "/api/credits/balance")


def load_worker(spec: dict[str, Any]) -> int:
    """Run ``spec["tokens"]`` users for ``spec["seconds"]`` from ``spec["start"]`` and print what they measured."""
    out: list[dict[str, list[float]]] = [{} for _ in spec["tokens"]]
    failures: list[str] = []
    start = spec["start"]
    time.sleep(max(0.0, start - time.time()))
    deadline = time.monotonic() + spec["seconds"]
    threads = [threading.Thread(target=user_loop, args=(spec["urls"], token, deadline, out[i], failures))
               for i, token in enumerate(spec["tokens"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged: dict[str, list[float]] = {}
    for mine in out:
        for name, latencies in mine.items():
            merged.setdefault(name, []).extend(latencies)
    print(json.dumps({"latencies": merged, "failures": failures}))
    return 0


# --- CPU accounting --------------------------------------------------------------------------------


def cpu_of(pids: list[int]) -> float:
    return sum(webhook_bench.cpu_seconds(pid) or 0.0 for pid in pids)


def postgres_pids(postmaster: int | None) -> list[int]:
    """The postmaster and its children (one backend process per connection), from /proc."""
    if postmaster is None:
        return []
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == postmaster:
                pids.append(int(entry.name))
    return pids


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    side: str
    seconds: float
    latencies: dict[str, list[float]]
    failures: list[str]
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())


def run_round(side: str, urls: list[str], tokens: list[str], seconds: float, replica_pids: list[int],
              postmaster: int | None, children_env: dict[str, str]) -> Round:
    start = time.time() + 1.5  # the load processes start and wait for the same moment
    chunks = [tokens[i::LOAD_PROCESSES] for i in range(LOAD_PROCESSES)]
    loaders = [subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--load-worker",
         json.dumps({"urls": urls, "tokens": chunk, "seconds": seconds, "start": start})],
        stdout=subprocess.PIPE, text=True, env=children_env, cwd=ROOT) for chunk in chunks]
    time.sleep(max(0.0, start - time.time()))
    pg_pids = postgres_pids(postmaster)
    before = {"replicas": cpu_of(replica_pids), "postgresql": cpu_of(pg_pids), "machine": machine_busy()}
    loader_pids = [p.pid for p in loaders]
    load_before = cpu_of(loader_pids)
    time.sleep(seconds)
    pg_pids = postgres_pids(postmaster)  # connections come and go: count those alive now too
    cpu = {"replicas": cpu_of(replica_pids) - before["replicas"],
           "postgresql": cpu_of(pg_pids) - before["postgresql"],
           "load": cpu_of(loader_pids) - load_before, "machine": machine_busy() - before["machine"]}
    latencies: dict[str, list[float]] = {}
    failures: list[str] = []
    for proc in loaders:
        out, _ = proc.communicate(timeout=seconds + 120)
        result = json.loads(out.strip().splitlines()[-1])
        for name, values in result["latencies"].items():
            latencies.setdefault(name, []).extend(values)
        failures += result["failures"]
    return Round(side, seconds, latencies, failures, cpu)


def merge_rounds(rounds: list[Round]) -> Round:
    merged = Round(rounds[0].side, sum(r.seconds for r in rounds), {}, [])
    for r in rounds:
        for name, values in r.latencies.items():
            merged.latencies.setdefault(name, []).extend(values)
        merged.failures += r.failures
        for name, value in r.cpu.items():
            merged.cpu[name] = merged.cpu.get(name, 0.0) + value
    return merged


def percentile(values: list[float], p: float) -> float:
    result = webhook_bench.Result("", len(values), 1.0, values, [])
    return result.percentile(p)


def describe(r: Round) -> list[str]:
    rate = r.requests / r.seconds
    everything = [x for v in r.latencies.values() for x in v]
    cores = {name: value / r.seconds for name, value in r.cpu.items()}
    lines = [f"{r.side:<11} {r.requests:>6} requests in {r.seconds:5.1f} s  {rate:7.1f} req/s  "
             f"p50 {percentile(everything, 50):6.1f} ms  p99 {percentile(everything, 99):7.1f} ms  "
             f"failures {len(r.failures)}",
             f"{'':<11} cores busy: replicas {cores.get('replicas', 0):.2f}, "
             f"PostgreSQL {cores.get('postgresql', 0):.2f}, load {cores.get('load', 0):.2f}, "
             f"whole machine {cores.get('machine', 0):.2f} of {os.cpu_count()}"]
    ops = ", ".join(f"{name} {len(v)} (p50 {percentile(v, 50):.0f} ms)" for name, v in sorted(r.latencies.items()))
    lines.append(f"{'':<11} {ops}")
    return lines


# --- main ------------------------------------------------------------------------------------------


def start_backend(name: str, tmp: Path, database_url: str, extra: dict[str, str] | None = None) -> webhook_bench.Child:
    env = webhook_bench.child_env(CREDITDESK_DATABASE_URL=database_url, **(extra or {}))
    return webhook_bench.Child(
        name, [sys.executable, "-m", "backend", "serve", "--host", "127.0.0.1", "--port", "0"], env,
        tmp / f"{name}.log",
    ).start()


def sign_in_all(urls: list[str], emails: list[str]) -> list[str]:
    """Every user signs in at once, spread over ``urls``; prints how long that took; returns the tokens."""
    from concurrent.futures import ThreadPoolExecutor

    def sign_in(n: int) -> tuple[str, float]:
        began = time.perf_counter()
        r = requests.post(f"{urls[n % len(urls)]}/api/auth/login", json={"email": emails[n], "password": PASSWORD},
                          timeout=120)
        r.raise_for_status()
        return r.json()["token"], time.perf_counter() - began

    began = time.perf_counter()
    with ThreadPoolExecutor(len(emails)) as pool:
        results = list(pool.map(sign_in, range(len(emails))))
    took = time.perf_counter() - began
    latencies = [latency for _, latency in results]
    print(f"sign in on {len(urls)} replica(s): {len(emails)} users at once in {took:.1f} s "
          f"({len(emails) / took:.1f}/s; p50 {percentile(latencies, 50):.0f} ms)", flush=True)
    return [token for token, _ in results]


def mixed_load(args: argparse.Namespace, tmp: Path, database_url: str, postmaster: int | None) -> bool:
    from backend import migrations
    from backend.db import Database

    db = Database(database_url)
    migrations.upgrade(db)
    db.close()
    extra = {"CREDITDESK_AUTH_RATE_LIMIT_PER_ADDRESS": "1000000/minute"}  # every user comes from 127.0.0.1
    replicas = [start_backend(f"replica{n}", tmp, database_url, extra) for n in range(2)]
    try:
        emails = [f"bench-user-{n}@example.com" for n in range(args.users)]
        for email in emails:
            r = requests.post(f"{replicas[0].url}/api/auth/register", json={"email": email, "password": PASSWORD},
                              timeout=60)
            r.raise_for_status()
        sides = {"1 replica": [replicas[0]], "2 replicas": replicas}
        tokens = {side: sign_in_all([c.url for c in group], emails) for side, group in sides.items()}
        env = webhook_bench.child_env()
        print(f"mixed load: {args.users} users, {args.rounds} alternating rounds of {args.seconds:.0f} s, "
              f"{LOAD_PROCESSES} load processes", flush=True)
        # A short warm-up of both sides (not counted): connections, caches, the first imports.
        for side, group in sides.items():
            run_round(side, [c.url for c in group], tokens[side], 3, [], None, env)
        done: dict[str, list[Round]] = {side: [] for side in sides}
        order = list(sides)
        for index in range(args.rounds):
            side = order[(index + index // 2) % 2]  # A B B A A B ...: each side gets early and late turns
            group = sides[side]
            pids = [c.proc.pid for c in group if c.proc is not None]
            done[side].append(run_round(side, [c.url for c in group], tokens[side], args.seconds, pids, postmaster,
                                        env))
        one, two = (merge_rounds(done[side]) for side in order)
    finally:
        for child in replicas:
            child.stop()
    print()
    for r in (one, two):
        print("\n".join(describe(r)))
    ratio = (two.requests / two.seconds) / (one.requests / one.seconds)
    print(f"ratio (2 replicas / 1 replica throughput): {ratio:.2f} ({'meets' if ratio >= AIM else 'BELOW'} "
          f"the {AIM} aim)")
    if ratio < AIM:
        busy = two.cpu.get("machine", 0) / two.seconds
        cores = os.cpu_count() or 1
        why = ("CPU-bound: the replicas, PostgreSQL and the load share these cores" if busy > 0.85 * cores
               else "not CPU-bound: see the latencies per operation")
        print(f"  limit: with 2 replicas the machine was {busy:.2f} of {cores} cores busy ({why})")
    for r in (one, two):
        for failure in r.failures[:5]:
            print(f"  {r.side} failure: {failure}")
    problems = ledger_problems(database_url)
    print("ledger: " + ("invariants hold" if not problems else f"{len(problems)} problem(s): {problems[:5]}"))
    return not one.failures and not two.failures and not problems


def ledger_problems(database_url: str) -> list[str]:
    from backend import ledger
    from backend.db import Database

    db = Database(database_url)
    try:
        with db.read() as conn:
            return ledger.check_invariants(conn)
    finally:
        db.close()


def webhooks_on_both(args: argparse.Namespace, tmp: Path, database_url: str) -> bool:
    total = webhook_bench.WARMUP_EVENTS + args.events
    sqlite_path = tmp / "webhooks.sqlite3"
    print(f"\nwebhooks: seeding {total} pending orders on SQLite and on PostgreSQL ...", flush=True)
    seeded = webhook_bench.seed(sqlite_path, total)
    webhook_bench.seed(database_url, total)
    template = webhook_bench._session_template()
    bodies = [webhook_bench.build_event(template, item) for item in seeded]
    stripe = {"STRIPE_SECRET_KEY": "sk_test_bench", "STRIPE_WEBHOOK_SECRET": webhook_bench.WEBHOOK_SECRET,
              "STRIPE_API_BASE": "http://127.0.0.1:9"}
    on_sqlite = start_backend("sqlite", tmp, f"sqlite:///{sqlite_path}", stripe)
    on_postgres = start_backend("postgresql", tmp, database_url, stripe)
    sides = [(on_sqlite, webhook_bench.BACKEND_PATH), (on_postgres, webhook_bench.BACKEND_PATH)]
    cpus = webhook_bench.Cpus(None, None)  # not pinned: PostgreSQL's own processes need the cores too
    try:
        # The warm-up events (not counted), then the measured ones, the sides taking turns.
        webhook_bench.run_alternating(sides, bodies[:webhook_bench.WARMUP_EVENTS], args.concurrency, 1, cpus, tmp)
        base, real = webhook_bench.run_alternating(
            sides, bodies[webhook_bench.WARMUP_EVENTS:], args.concurrency, min(args.rounds, args.events), cpus, tmp)
    finally:
        on_sqlite.stop()
        on_postgres.stop()
    print(base.line())
    print(real.line())
    print(f"ratio (PostgreSQL / SQLite webhook throughput): {real.rate / base.rate:.2f}")
    ok = not base.failures and not real.failures
    for target in (sqlite_path, database_url):
        problems, purchases, _ = webhook_bench.check_ledger(target, total)
        print(f"ledger on {'SQLite' if target == sqlite_path else 'PostgreSQL'}: {purchases} purchases; "
              + ("invariants hold" if not problems else f"{len(problems)} problem(s)"))
        ok = ok and not problems
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15, help="length of one measured round (default 15)")
    parser.add_argument("--rounds", type=int, default=4, help="measured rounds, the sides taking turns (default 4)")
    parser.add_argument("--users", type=int, default=50, help="simulated users (default 50)")
    parser.add_argument("--events", type=int, default=1000, help="webhook events per side (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="webhooks in flight (default 8)")
    parser.add_argument("--database-url", help="an empty PostgreSQL database to use (default: start a server)")
    parser.add_argument("--load-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_worker:
        return load_worker(json.loads(args.load_worker))
    if args.rounds < 2 or args.seconds <= 0 or args.users < 1 or args.events < 1:
        parser.error("--rounds must be at least 2, and --seconds, --users and --events positive")

    from tests.helpers.servers import PostgresServer

    server = None if args.database_url else PostgresServer(durable=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="creditdesk-bench-") as tmp_name:
            tmp = Path(tmp_name)
            if server is not None:
                mixed_url = server.create_database(migrated=False)
                webhooks_url = server.create_database(migrated=False)
            else:
                mixed_url = webhooks_url = args.database_url
            postmaster = server.proc.pid if server is not None and server.proc is not None else None
            print(f"PostgreSQL: {'started for this run (durable settings)' if server else 'given'}; "
                  f"{os.cpu_count()} cores on this machine", flush=True)
            ok = mixed_load(args, tmp, mixed_url, postmaster)
            if webhooks_url == mixed_url and server is None:
                print("\nwebhooks: skipped (give a server, not one database, to compare)")
            else:
                ok = webhooks_on_both(args, tmp, webhooks_url) and ok
    finally:
        if server is not None:
            server.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
