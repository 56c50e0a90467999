"""How `creditdesk-backend check` grows with the ledger, against 0.1.0's walk of the entries.

Builds ledgers of two sizes (default 100,000 and 1,000,000 entries over 1,000 users), valid, in a
SQLite file, and times ``ledger.check_invariants`` on each. The baseline, measured in the same run on
the same files, is the part of 0.1.0's check that walked every entry in Python for the running sums
(today's check does that walk, streamed, and all its other rules besides).
Prints seconds, microseconds per entry and the growth ratio (10x the entries should cost about 10x).

    .venv/bin/python bench/check.py [--sizes 100000 1000000] [--users 1000]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from backend import ledger, migrations, rollups
from backend.db import Database


def build(path: Path, entries: int, users: int) -> None:
    db = Database(path)
    migrations.upgrade(db)
    db.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    balances = [0] * users
    rows = []
    for n in range(entries):
        user = n % users
        amount = 100 if n < users or n % 3 else -7
        balances[user] += amount
        kind = "purchase" if amount > 0 else "spend"
        rows.append((n + 1, user + 1, kind, amount, balances[user], f"ref_{n}", "2026-11-26T00:00:00.000Z"))
        if len(rows) == 50_000:
            conn.executemany("INSERT INTO ledger_entries (id, user_id, type, amount, balance_after, reference,"
                             " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            rows.clear()
    conn.executemany("INSERT INTO ledger_entries (id, user_id, type, amount, balance_after, reference, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.executemany("INSERT INTO balances (user_id, balance) VALUES (?, ?)",
                     [(u + 1, b) for u, b in enumerate(balances)])
    conn.commit()
    conn.close()
    db = Database(path)
    with db.transaction() as session:  # the rows went around ledger.post: the usage sums are made here
        rollups.rebuild(session)
    db.close()


def baseline_check(path: Path) -> list[str]:
    """0.1.0's check: a Python loop over every entry for the running sums."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    problems: list[str] = []
    running: dict[int, int] = {}
    for row in conn.execute("SELECT id, user_id, amount, balance_after, type FROM ledger_entries ORDER BY id"):
        total = running.get(row["user_id"], 0) + row["amount"]
        running[row["user_id"]] = total
        if row["balance_after"] != total:
            problems.append(f"entry {row['id']}")
        if row["type"] == "spend" and (row["balance_after"] < 0 or row["amount"] >= 0):
            problems.append(f"entry {row['id']}")
    conn.close()
    return problems


def timed(function, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[100_000, 1_000_000])
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"ledger-{size}.sqlite3"
            build(path, size, args.users)
            db = Database(path)
            with db.read() as conn:
                ours, problems = timed(ledger.check_invariants, conn)
            db.close()
            assert problems == [], problems[:3]
            base, base_problems = timed(baseline_check, path)
            assert base_problems == []
            figures[size] = (ours, base)
            print(f"{size:>10,} entries: check {ours:7.2f} s ({ours / size * 1e6:5.2f} us/entry); "
                  f"0.1.0 walk {base:7.2f} s ({base / size * 1e6:5.2f} us/entry); check/baseline {ours / base:.2f}")
    small, large = args.sizes
    growth = large / small
    print(f"growth for {growth:.0f}x the entries: check {figures[large][0] / figures[small][0]:.1f}x, "
          f"0.1.0 walk {figures[large][1] / figures[small][1]:.1f}x (linear is {growth:.0f}x)")


if __name__ == "__main__":
    main()
