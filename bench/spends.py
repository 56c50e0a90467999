"""Spend throughput and latency: ``POST /api/credits/spend`` against a same-stack baseline, in the same run.

Eight users (eight host-application sessions) spend 1 credit at a time with a new idempotency key each,
``--concurrency`` (8) connections at once, the users' spends in turn, from a separate load-client process
pinned to its own CPU (the load client of ``bench/webhooks.py``), in alternating rounds against:

- the backend, ``python -m backend serve`` in stub mode on SQLite: authentication, spend controls, the
  ledger's entry and balance, the usage sums and the alerts, in one ``BEGIN IMMEDIATE`` transaction;
- the baseline, the same stack doing the least a spend can: the same uvicorn set-up and logging, FastAPI,
  the bearer token looked up as the backend looks it up, then one INSERT of an entry and one UPDATE of the
  balance in one transaction through the same ``Database`` (``synchronous=FULL``) on the same thread pool.

Also measures the machine's fsync rate in the same folder (4 KB written and fsynced, for a second), which
bounds what any durable commit can do. Prints spends/s, p50/p99 and server CPU per spend for each side, the
ratio (aim: at least 0.7 of the baseline), p99 (aim: under 30 ms) and both against the fsync rate, and
checks that the backend's ledger adds up.

    .venv/bin/python bench/spends.py [--spends 3000] [--concurrency 8] [--rounds 6]

Measured on 2 shared cores (2026-12-06, load average 1-1.8), six runs, four of them alternating with the code of
that morning (32af77c): 0.86-0.96 of the baseline (median 0.89; 914-962 spends/s against 1,049-1,052 in the last two,
p99 15-16 ms), server CPU 1.02-1.72 ms a spend against the baseline's 0.92-1.46, where that code gave 0.64-0.94
(median 0.68). What moved it, measured in instructions under callgrind
(the route driven in process, 8 at a time): FastAPI 0.165's included routers walked every router again per request
(790K instructions of a spend's 3.22M; the routes now sit on the app itself); the signed-in dependency took a
thread hop of its own (427K; the token is looked up on the spend's worker thread); the answer was checked and
encoded twice (35K). That left a spend's request at 1.83M instructions against the baseline's 1.93M. Then the
spends queued for SQLite's write lock commit together (Database.grouped): eight users spending at once share a sync
of the disk and the pages written where the baseline syncs each, and the host's fsync rate no longer bounds the
backend; the savepoints that keep each spend's answer its own cost instructions (2.44M, bench/instructions.py),
which the kernel's share of the syncs and writes saved more than pays for. A spend runs 9
statements on SQLite (``tests/backend/test_prepared.py`` lists them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi import FastAPI, Request, Response
from webhooks import Child, Cpus, Result, child_env, merge, run_job, serve_app, verdict

AIM_RATIO = 0.7
AIM_P99_MS = 30.0
USERS = 8
PASSWORD = "bench-password-0"  # noqa: S105 (made-up accounts)
BASELINE_PATH = "/spend"
BACKEND_PATH = "/api/credits/spend"


def seed(db_path: Path, users: int, balance: int) -> list[str]:
    """``users`` users with ``balance`` credits each; returns a bearer token per user."""
    from backend import accounts, ledger, migrations
    from backend.db import Database

    db = Database(db_path)
    migrations.upgrade(db)
    tokens = []
    for n in range(users):
        user = accounts.register(db, f"spender{n}@example.com", PASSWORD)
        with db.transaction() as conn:
            ledger.post(conn, user_id=user.id, type="purchase", amount=balance, reference=f"cs_bench_{n}")
        tokens.append(accounts.issue_token(db, user, 24 * 3600))
    db.close()
    return tokens


def baseline_app(db_path: Path) -> FastAPI:
    """The token looked up as the backend does, then an entry inserted and the balance updated: nothing else."""
    from sqlalchemy import text
    from starlette.concurrency import run_in_threadpool

    from backend import accounts
    from backend.db import Database

    db = Database(db_path)

    def spend(token: str, key: str, amount: int) -> int | None:
        user = accounts.user_for_token(db, token)
        if user is None:
            return None
        with db.transaction() as conn:
            balance = conn.execute(text("UPDATE balances SET balance = balance - :a WHERE user_id = :u "
                                        "RETURNING balance"), {"a": amount, "u": user.id}).scalar_one()
            conn.execute(text("INSERT INTO ledger_entries (user_id, type, amount, balance_after, reference, "
                              "description, created_at) VALUES (:u, 'spend', :a, :b, :r, '', :t)"),
                         {"u": user.id, "a": -amount, "b": balance, "r": key, "t": time.time()})
        return int(balance)

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post(BASELINE_PATH)
    async def spend_route(request: Request) -> Response:
        body = json.loads(await request.body())
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        balance = await run_in_threadpool(spend, token, body["idempotencyKey"], int(body["amount"]))
        if balance is None:
            return Response('{"error": "not_signed_in"}', status_code=401, media_type="application/json")
        return Response(json.dumps({"balance": balance}), media_type="application/json")

    return app


def serve_baseline(db_path: Path) -> int:
    return serve_app(lambda: baseline_app(db_path))


def run_batch(child: Child, path: str, tokens: list[str], spends: int, first_key: int, cpus: Cpus,
              tmp: Path) -> Result:
    """``spends`` spends of 1 credit, the users' in turn, from the load client of ``bench/webhooks.py``."""
    requests_ = [({"Authorization": f"Bearer {tokens[n % len(tokens)]}"},
                  json.dumps({"amount": 1, "idempotencyKey": f"k-{first_key + n}",
                              "description": "Export a report"}).encode())
                 for n in range(spends)]
    return run_job(child, path, requests_, len(tokens), cpus, tmp)


def fsync_rate(folder: Path, seconds: float = 1.0) -> float:
    """fsyncs a second of a 4 KB write in ``folder``: the ceiling of durable commits one after another."""
    path = folder / "fsync-probe"
    count, block = 0, os.urandom(4096)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            os.pwrite(fd, block, 0)
            os.fsync(fd)
            count += 1
    finally:
        os.close(fd)
        path.unlink()
    return count / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spends", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=USERS)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--baseline-server", metavar="DB", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_server is not None:
        return serve_baseline(args.baseline_server)

    from backend import ledger
    from backend.db import Database

    with tempfile.TemporaryDirectory(prefix="creditdesk-bench-spends-") as tmp_name:
        tmp = Path(tmp_name)
        backend_db, base_db = tmp / "backend.sqlite3", tmp / "base.sqlite3"
        budget = args.spends + 1000
        backend_tokens = seed(backend_db, args.concurrency, budget)
        base_tokens = seed(base_db, args.concurrency, budget)
        fsyncs = fsync_rate(tmp)
        cpus = Cpus.split()
        print(f"{args.spends} spends of 1 credit to each side, {args.concurrency} users at a time (one connection "
              f"each), in {args.rounds} alternating rounds; {cpus.describe()}; this disk: {fsyncs:.0f} fsyncs/s",
              flush=True)
        backend = Child("backend", [sys.executable, "-m", "backend", "serve", "--host", "127.0.0.1", "--port", "0"],
                        child_env(CREDITDESK_DB=str(backend_db)), tmp / "backend.log")
        baseline = Child("baseline", [sys.executable, str(Path(__file__).resolve()), "--baseline-server",
                                      str(base_db)], child_env(), tmp / "baseline.log")
        sides = [(baseline, BASELINE_PATH, base_tokens), (backend, BACKEND_PATH, backend_tokens)]
        results: dict[str, list[Result]] = {"baseline": [], "backend": []}
        try:
            baseline.start()
            backend.start()
            for child, path, tokens in sides:  # warm up, not counted
                run_batch(child, path, tokens, 8 * len(tokens), 10**8, cpus, tmp)
            per_round = args.spends // args.rounds
            for n in range(args.rounds):
                order = sides if n % 2 == 0 else list(reversed(sides))
                for child, path, tokens in order:
                    results[child.name].append(run_batch(child, path, tokens, per_round, n * per_round, cpus, tmp))
        except RuntimeError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        finally:
            backend.stop()
            baseline.stop()
        base, real = merge(results["baseline"]), merge(results["backend"])
        rounds = [r.rate / b.rate for r, b in zip(results["backend"], results["baseline"], strict=True)]
        print()
        print("  " + base.line().replace("events", "spends"))
        print("  " + real.line().replace("events", "spends"))
        ratio = real.rate / base.rate if base.rate else 0.0
        print(f"  throughput ratio (backend / baseline): {ratio:.2f}, per round {min(rounds):.2f}-{max(rounds):.2f} "
              f"({verdict(ratio >= AIM_RATIO)} the {AIM_RATIO} aim); p99 {real.percentile(99):.1f} ms "
              f"({verdict(real.percentile(99) < AIM_P99_MS)} the {AIM_P99_MS:.0f} ms aim)")
        print(f"  against the disk: the backend commits {real.rate / fsyncs:.2f} spends per fsync the disk can do "
              f"one after another, the baseline {base.rate / fsyncs:.2f}")
        db = Database(backend_db)
        with db.read() as conn:
            problems = ledger.check_invariants(conn)
        db.close()
        print("  ledger: " + ("invariants hold" if not problems else f"{len(problems)} problem(s): {problems[:3]}"))
        failures = real.failures + base.failures
        for failure in failures[:5]:
            print(f"  failure: {failure}")
        return 1 if failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())
