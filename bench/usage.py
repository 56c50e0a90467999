"""The usage dashboard for a user with 100,000 ledger entries, against fetching the whole history.

Seeds a SQLite database with one user's ``--entries`` entries over the last 400 days (spends with a dozen
descriptions and features, purchases, refunds, adjustments) and as many again for two other users, starts the
real backend (``python -m backend serve``) on it, and times over HTTP on loopback, ``--rounds`` times each:

- ``GET /api/credits/usage`` for 30 days by day, 12 weeks, 12 months, and a whole year by day, in the user's
  time zone (Europe/Paris);
- ``GET /api/credits/transactions.csv`` for that year (every row);
- the baseline, in the same run: what a client would do without the dashboard, fetching the whole history
  page by page (``GET /api/credits/transactions?limit=200``) and summing it per day itself;
- a spend of 1 credit without caps and with a day, week and month cap, whose spending is counted inside
  the spend's transaction.

Prints the median and slowest time of each, the ratio of the baseline to each dashboard, and exits 1 if a
dashboard's slowest answer takes a second or more.

    .venv/bin/python bench/usage.py [--entries 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZONE = "Europe/Paris"
PASSWORD = "bench-password-0"  # noqa: S105 (a made-up account)
LIMIT_SECONDS = 1.0
DESCRIPTIONS = ["Export a report", "Render a preview", "Translate a page", "Résumé du document", "Upscale an image",
                "Transcribe audio", "Summarise a thread", "Index a folder"]
FEATURES = [None, None, None, "ocr", "export", "sync"]


def seed(db_path: Path, entries: int) -> str:
    """One bench user (and two others) with ``entries`` entries each; returns the bench user's email."""
    from sqlalchemy import insert, update

    from backend import accounts, migrations, rollups
    from backend.db import Database, iso_utc
    from backend.schema import balances, ledger_entries

    db = Database(db_path)
    migrations.upgrade(db)
    rng = random.Random(10)
    now = datetime.now(UTC)
    email = "bench0@example.com"
    try:
        for u in range(3):
            user = accounts.register(db, f"bench{u}@example.com", f"bench-password-{u}")
            moments = sorted(now - timedelta(seconds=rng.randrange(400 * 86400)) for _ in range(entries))
            rows, balance = [], 0
            for n, moment in enumerate(moments):
                roll = rng.random()
                feature, description = None, ""
                if balance < 100 or roll < 0.03:
                    kind, amount, description = "purchase", rng.choice([100, 550, 1200]), "Standard pack"
                elif roll < 0.035:
                    kind, amount, description = "refund", -rng.randrange(1, 100), "Refund of a pack"
                elif roll < 0.04:
                    kind, amount, description = "adjustment", rng.choice([-5, 10, 25]), "Goodwill"
                else:
                    kind, amount = "spend", -rng.randrange(1, min(balance, 40) + 1)
                    description, feature = rng.choice(DESCRIPTIONS), rng.choice(FEATURES)
                balance += amount
                rows.append({"user_id": user.id, "type": kind, "amount": amount, "balance_after": balance,
                             "reference": f"bench-{u}-{n}", "description": description, "feature": feature,
                             "created_at": iso_utc(moment), "fingerprint": None})
            with db.transaction() as conn:
                for start in range(0, len(rows), 5000):
                    conn.execute(insert(ledger_entries), rows[start:start + 5000])
                conn.execute(update(balances).where(balances.c.user_id == user.id).values(balance=balance))
        with db.transaction() as conn:  # the rows went around ledger.post: the dashboard's sums are made here
            rollups.rebuild(conn)
    finally:
        db.close()
    return email


def start_backend(db_path: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "CREDITDESK_"))}
    env.update({"CREDITDESK_DB": str(db_path), "PYTHONUNBUFFERED": "1"})
    log = (db_path.parent / "backend.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--port", "0", "--exit-with-stdin"],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        raise SystemExit(f"the backend did not start: {line!r}")
    url = line.split("listening on ", 1)[1].split()[0]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/api/health", timeout=1).ok:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("the backend never answered /api/health")


def timed(fn: object, rounds: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="creditdesk-bench-usage-") as tmp:
        db_path = Path(tmp) / "backend.sqlite3"
        started = time.perf_counter()
        email = seed(db_path, args.entries)
        print(f"seeded 3 users x {args.entries:,} entries in {time.perf_counter() - started:.1f} s")
        proc, url = start_backend(db_path)
        try:
            http = requests.Session()
            token = http.post(f"{url}/api/auth/login", json={"email": email, "password": PASSWORD},
                              timeout=30).json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"
            assert http.put(f"{url}/api/credits/controls", json={"timeZone": ZONE}, timeout=30).ok
            today = datetime.now(ZoneInfo(ZONE)).date()
            year_ago = today - timedelta(days=364)

            def get(path: str, **params: str) -> requests.Response:
                r = http.get(url + path, params=params, timeout=120)
                r.raise_for_status()
                return r

            cases = {
                "dashboard, 30 days by day": lambda: get("/api/credits/usage", granularity="day").json(),
                "dashboard, 12 weeks": lambda: get("/api/credits/usage", granularity="week").json(),
                "dashboard, 12 months": lambda: get("/api/credits/usage", granularity="month").json(),
                "dashboard, 365 days by day": lambda: get("/api/credits/usage", granularity="day",
                                                          **{"from": year_ago.isoformat(), "to": today.isoformat()}
                                                          ).json(),
            }
            results: dict[str, tuple[list[float], object]] = {}
            for name, fn in cases.items():
                fn()  # warm-up
                results[name] = timed(fn, args.rounds)
            csv_times, csv_body = timed(lambda: get("/api/credits/transactions.csv", **{
                "from": year_ago.isoformat(), "to": today.isoformat()}).content, max(1, args.rounds // 2))

            def baseline() -> dict[str, int]:
                """The whole history, page by page, summed per local day by the client."""
                tz, spent, cursor = ZoneInfo(ZONE), defaultdict(int), None
                while True:
                    params = {"limit": "200"} | ({"before": cursor} if cursor else {})
                    page = get("/api/credits/transactions", **params).json()
                    for t in page["transactions"]:
                        if t["type"] == "spend":
                            day = datetime.fromisoformat(t["createdAt"].replace("Z", "+00:00")).astimezone(tz)
                            spent[day.date().isoformat()] -= t["amount"]
                    cursor = page["nextCursor"]
                    if cursor is None:
                        return spent

            base_times, base_spent = timed(baseline, max(1, args.rounds // 2))

            # What the caps cost a spend: counting the period's spending in the spend's transaction.
            keys = iter(range(10**9))

            def spend() -> None:
                r = http.post(f"{url}/api/credits/spend", json={"amount": 1, "idempotencyKey": f"b{next(keys)}"},
                              timeout=30)
                r.raise_for_status()

            uncapped, _ = timed(spend, 40)
            assert http.put(f"{url}/api/credits/controls", json={"caps": {"day": 10**6, "week": 10**6, "month": 10**6}},
                            timeout=30).ok
            capped, _ = timed(spend, 40)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(30)

    year = results["dashboard, 365 days by day"][1]
    assert isinstance(year, dict) and isinstance(base_spent, dict)
    dashboard_spent = {b["start"]: b["spent"] for b in year["buckets"] if b["spent"]}
    agree = dashboard_spent == {d: s for d, s in base_spent.items() if d >= year_ago.isoformat()}
    base_median = statistics.median(base_times)
    print(f"\n{'':32} {'median':>9} {'slowest':>9}  baseline / this")
    for name, (times, _) in results.items():
        median = statistics.median(times)
        print(f"{name:32} {median * 1000:7.1f} ms {max(times) * 1000:7.1f} ms  {base_median / median:8.0f}x")
    print(f"{'CSV, 365 days (' + format(len(csv_body), ',') + ' bytes)':32} "  # type: ignore[arg-type]
          f"{statistics.median(csv_times) * 1000:7.1f} ms {max(csv_times) * 1000:7.1f} ms")
    print(f"{'baseline: whole history, paged':32} {base_median * 1000:7.1f} ms {max(base_times) * 1000:7.1f} ms")
    print(f"{'spend, no caps':32} {statistics.median(uncapped) * 1000:7.1f} ms {max(uncapped) * 1000:7.1f} ms")
    ratio = statistics.median(capped) / statistics.median(uncapped)
    print(f"{'spend, day + week + month caps':32} {statistics.median(capped) * 1000:7.1f} ms "
          f"{max(capped) * 1000:7.1f} ms  (caps / no caps: {ratio:.2f}x)")
    print(f"\nthe year by day agrees with the baseline's own sums: {agree}")
    slowest = max(max(times) for times, _ in results.values())
    ok = slowest < LIMIT_SECONDS and agree
    print(f"slowest dashboard answer {slowest * 1000:.0f} ms: {'under' if ok else 'NOT under'} "
          f"{LIMIT_SECONDS:.0f} s" + ("" if agree else " (and the figures disagree)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
