"""The CSV export of a year of the ledger, for users with 10,000, 100,000 and 1,000,000 entries.

Seeds one SQLite database (migrated by the backend's own migrations) with three users whose entries spread
over the last year, starts the real backend (``python -m backend serve``) on it, and downloads each user's
``GET /api/credits/transactions.csv`` for that year over HTTP on loopback, streamed, ``--rounds`` times.

The baseline, measured in the same run: this process reading the same rows with the standard library's
``sqlite3`` (one ``SELECT ... ORDER BY created_at, id`` on the same index) and writing them with ``csv.writer``
to nowhere, which is the least work an export can do. Printed per size: the median export time, the
baseline's, their ratio, how the export grew against the 10x rows before it (aim: at most 12x, linear), and
the backend's resident memory at its highest during the downloads against its size before them (aim:
constant, the rows are streamed). Exits 1 if the 1,000,000-entry year takes 10 s or more, or the growth
per 10x rows passes 12x.

    .venv/bin/python bench/export.py [--sizes 10000,100000,1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from usage import start_backend  # noqa: E402 (the same backend start as the usage bench)

PASSWORD = "bench-password-0"  # noqa: S105 (a made-up account)
LIMIT_SECONDS = 10.0
GROWTH_LIMIT = 12.0
DESCRIPTIONS = ["Export a report", "Render a preview", "Translate a page", "Résumé du document", "=SUM(A1)"]


def seed(db_path: Path, sizes: list[int]) -> list[str]:
    """A user per size, each with that many entries over the last 365 days; returns their emails."""
    from backend import accounts, migrations
    from backend.db import Database, iso_utc

    db = Database(db_path)
    migrations.upgrade(db)
    emails, ids = [], []
    for n, _ in enumerate(sizes):
        email = f"export{n}@example.com"
        ids.append(accounts.register(db, email, PASSWORD).id)
        emails.append(email)
    db.close()
    rng = random.Random(7)
    now = datetime.now(UTC)
    with sqlite3.connect(db_path) as conn:
        for user_id, size in zip(ids, sizes, strict=True):
            balance, rows = 0, []
            moments = sorted(now - timedelta(seconds=rng.randrange(364 * 86400)) for _ in range(size))
            for n, moment in enumerate(moments):
                amount = 500 if balance < 40 else -rng.randrange(1, 40)
                balance += amount
                rows.append((user_id, "purchase" if amount > 0 else "spend", amount, balance, f"b-{user_id}-{n}",
                             rng.choice(DESCRIPTIONS), iso_utc(moment)))
            conn.executemany("INSERT INTO ledger_entries (user_id, type, amount, balance_after, reference, "
                             "description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("INSERT OR REPLACE INTO balances (user_id, balance) VALUES (?, ?)", (user_id, balance))
    return emails


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakMemory:
    """The highest resident size of a process while the block runs, sampled every 5 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def baseline(db_path: Path, user_id: int, lo: str, hi: str) -> int:
    """The same rows read with sqlite3 and written with csv.writer to nowhere; returns the rows written."""
    out = csv.writer(io.StringIO())
    count = 0
    with sqlite3.connect(db_path) as conn:
        for row in conn.execute("SELECT id, created_at, type, amount, balance_after, description, feature, reference "
                                "FROM ledger_entries WHERE user_id = ? AND created_at >= ? AND created_at < ? "
                                "ORDER BY created_at, id", (user_id, lo, hi)):
            out.writerow(row)
            count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    failed = False
    with tempfile.TemporaryDirectory(prefix="creditdesk-bench-export-") as tmp:
        db_path = Path(tmp) / "backend.sqlite3"
        started = time.perf_counter()
        emails = seed(db_path, sizes)
        seeded = ", ".join(f"{s:,}" for s in sizes)
        print(f"seeded users with {seeded} entries in {time.perf_counter() - started:.1f} s")
        proc, url = start_backend(db_path)
        try:
            today = datetime.now(UTC).date()
            first = today - timedelta(days=366)
            lo, hi = f"{first.isoformat()}T00:00:00.000Z", f"{(today + timedelta(days=2)).isoformat()}T00:00:00.000Z"
            idle = rss_kib(proc.pid)
            print(f"backend resident before the exports: {idle / 1024:.0f} MB\n")
            columns = ("entries", 10), ("rows", 9), ("export", 9), ("baseline", 9), ("ratio", 6), ("growth", 7), \
                ("peak RSS", 9)
            print(" ".join(f"{name:>{width}}" for name, width in columns))
            previous: float | None = None
            for n, (size, email) in enumerate(zip(sizes, emails, strict=True)):
                http = requests.Session()
                token = http.post(f"{url}/api/auth/login", json={"email": email, "password": PASSWORD},
                                  timeout=30).json()["token"]
                http.headers["Authorization"] = f"Bearer {token}"
                user_id = n + 1
                export_times, base_times, rows = [], [], 0
                with PeakMemory(proc.pid) as memory:
                    for _ in range(args.rounds):
                        t0 = time.perf_counter()
                        with http.get(f"{url}/api/credits/transactions.csv", stream=True, timeout=600, params={
                                "from": first.isoformat(), "to": today.isoformat()}) as r:
                            r.raise_for_status()
                            lines = sum(chunk.count(b"\n") for chunk in r.iter_content(1 << 16))
                        export_times.append(time.perf_counter() - t0)
                        rows = lines - 1
                        t0 = time.perf_counter()
                        base_rows = baseline(db_path, user_id, lo, hi)
                        base_times.append(time.perf_counter() - t0)
                if base_rows != rows:
                    print(f"  the export has {rows} rows, the baseline {base_rows}")
                    failed = True
                export, base = statistics.median(export_times), statistics.median(base_times)
                growth = f"{export / previous:6.1f}x" if previous else "      -"
                if previous and export / previous > GROWTH_LIMIT:
                    failed = True
                previous = export
                print(f"{size:>10,} {rows:>9,} {export:>8.2f}s {base:>8.2f}s {export / base:>5.1f}x {growth} "
                      f"{memory.peak / 1024:>7.0f} MB   (spread {min(export_times):.2f}-{max(export_times):.2f} s)")
                if size >= 1_000_000 and export >= LIMIT_SECONDS:
                    failed = True
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=30)
    print("\naims: at most 12x per 10x rows; the 1,000,000-entry year under 10 s; memory flat:",
          "NOT MET" if failed else "met")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
