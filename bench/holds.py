"""Hold + settle pairs against spends, on the same backend, in the same run.

A host application that does not know a feature's cost beforehand makes two calls where it made one:
``POST /api/credits/holds``, then ``POST /api/credits/holds/{id}/settle``. This measures what that costs: eight
users (one keep-alive connection and one thread each) make, in alternating rounds, ``--ops`` spends of 1 credit,
then ``--ops`` pairs of a hold of 3 settled for 1, against ``python -m backend serve`` in stub mode on SQLite (the
server pinned to one CPU, this load client to the other where there are two). Prints spends/s and pairs/s with
p50/p99 of one spend and of one whole pair, their ratio (a pair is two requests and two transactions, so about
0.5 is what the same work per request would give), and checks that the ledger and the holds add up.

    .venv/bin/python bench/holds.py [--ops 1500] [--rounds 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spends import seed
from webhooks import Child, Cpus, child_env, pin

USERS = 8


class Client:
    """One user's keep-alive connection."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        self.conn.request("POST", path, json.dumps(body), self.headers)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read())


def run_round(clients: list[Client], ops: int, kind: str, first_key: int) -> tuple[float, list[float], int]:
    """``ops`` spends or pairs, the users' in turn on their own threads; (seconds, latencies in ms, failures)."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def work(n: int, client: Client) -> None:
        mine: list[float] = []
        for i in range(n, ops, len(clients)):
            key = f"{kind}-{first_key + i}"
            started = time.perf_counter()
            if kind == "spend":
                ok = client.post("/api/credits/spend", {"amount": 1, "idempotencyKey": key,
                                                        "description": "Export a report"})[0] == 200
            else:
                status, hold = client.post("/api/credits/holds", {"amount": 3, "idempotencyKey": key,
                                                                  "description": "Render"})
                ok = status == 201 and client.post(f"/api/credits/holds/{hold['id']}/settle", {"amount": 1})[0] == 200
            mine.append((time.perf_counter() - started) * 1000)
            if not ok:
                with lock:
                    failures[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(n, client)) for n, client in enumerate(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, failures[0]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)

    from backend import holds, ledger
    from backend.db import Database

    with tempfile.TemporaryDirectory(prefix="creditdesk-bench-holds-") as tmp_name:
        tmp = Path(tmp_name)
        db_path = tmp / "backend.sqlite3"
        tokens = seed(db_path, USERS, 10 * args.ops + 1000)
        cpus = Cpus.split()
        backend = Child("backend", [sys.executable, "-m", "backend", "serve", "--host", "127.0.0.1", "--port", "0"],
                        child_env(CREDITDESK_DB=str(db_path)), tmp / "backend.log")
        print(f"{args.ops} spends and {args.ops} hold+settle pairs, {USERS} users at a time, in {args.rounds} "
              f"alternating rounds; {cpus.describe()}", flush=True)
        totals: dict[str, tuple[float, list[float], int]] = {"spend": (0.0, [], 0), "pair": (0.0, [], 0)}
        try:
            backend.start()
            assert backend.proc is not None
            pin(backend.proc.pid, cpus.servers)
            pin(os.getpid(), cpus.client)
            clients = [Client(backend.url, token) for token in tokens]
            run_round(clients, 8 * USERS, "spend", 10**8)  # warm up, not counted
            run_round(clients, 8 * USERS, "pair", 10**8)
            per_round = args.ops // args.rounds
            for n in range(args.rounds):
                for kind in (("spend", "pair") if n % 2 == 0 else ("pair", "spend")):
                    seconds, latencies, failures = run_round(clients, per_round, kind, n * per_round)
                    before = totals[kind]
                    totals[kind] = (before[0] + seconds, before[1] + latencies, before[2] + failures)
        finally:
            backend.stop()
        rates = {}
        for kind, (seconds, latencies, failures) in totals.items():
            rates[kind] = len(latencies) / seconds
            name = "spends" if kind == "spend" else "pairs "
            print(f"  {name} {len(latencies):6d} in {seconds:6.2f} s  {rates[kind]:7.1f}/s  p50 "
                  f"{statistics.median(latencies):6.1f} ms  p99 {percentile(latencies, 99):6.1f} ms  "
                  f"failures {failures}")
        print(f"  pairs / spends: {rates['pair'] / rates['spend']:.2f} (two requests and two transactions a pair)")
        db = Database(db_path)
        with db.read() as conn:
            problems = ledger.check_invariants(conn) + holds.problems(conn, datetime.now(UTC))
        db.close()
        print("  ledger and holds: " + ("invariants hold" if not problems else f"{len(problems)}: {problems[:3]}"))
        return 1 if problems or any(failures for _, _, failures in totals.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
