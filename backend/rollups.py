"""Running sums of the ledger for the usage dashboard, kept with each entry in the entry's transaction.

- **Quarters** (``usage_quarters``): per user, quarter hour (UTC) and entry type, the sum of the amounts. Every
  time zone's midnight has fallen on a quarter hour since 1972 (offsets are whole quarters), so the dashboard's
  days, weeks and months in any zone are sums of whole quarters: a year is at most 35,040 rows a type, however
  many entries it holds. A range that does not fall on quarters (a zone's offset before 1972) is summed from the
  ledger itself (:mod:`backend.usage` decides).
- **Labels** (``usage_labels``): per user, UTC day and label (the spend's feature, else its description), what
  spends took. "By description" sums the whole UTC days of its range from here and the hours at its two ends
  from the ledger.

The ledger's check (:func:`backend.ledger.check_invariants`) recomputes both from the entries and reports any
difference; :func:`rebuild` recomputes them from the entries (migration 0007, and after a bulk load).
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.sql.expression import Executable

from backend import prepared
from backend.db import insert_for
from backend.entries import Entry
from backend.schema import ledger_entries, usage_labels, usage_quarters

Sums = dict[tuple[str, str], int]  # (quarter or day, type or label) -> the sum of the amounts


def quarter(created_at: str) -> str:
    """The start of the quarter hour of a stored time, in the same text form (``2026-11-26T13:15:00.000Z``); a
    text that is no such time (none is written so) is its own quarter, so that a migration never stops on it."""
    minutes = created_at[14:16]
    if len(created_at) < 16 or not minutes.isdigit():
        return created_at
    return f"{created_at[:14]}{int(minutes) // 15 * 15:02d}:00.000Z"


def day(created_at: str) -> str:
    """The UTC day of a stored time (``2026-11-26``)."""
    return created_at[:10]


def label(feature: str | None, description: str | None) -> str:
    """What "by description" calls a spend: its feature where it names one, else its description."""
    return feature if feature is not None else (description if description is not None else "")


@functools.cache
def _add_to(dialect_name: str, which: str) -> Executable:
    """``INSERT ... ON CONFLICT DO UPDATE SET amount = amount + the new amount`` (one statement, both engines)."""
    table, keys = (usage_quarters, ["user_id", "quarter", "type"]) if which == "quarters" else \
        (usage_labels, ["user_id", "day", "label"])
    statement = insert_for(dialect_name, table)
    return statement.on_conflict_do_update(index_elements=keys,
                                           set_={"amount": table.c.amount + statement.excluded.amount})


prepared.hot("a quarter's sum added", _add_to("sqlite", "quarters"))
prepared.hot("a label's sum added", _add_to("sqlite", "labels"))


def add(conn: Connection, entry: Entry) -> None:
    """Count a new entry in its quarter, and a spend in its day's label (in the entry's transaction)."""
    dialect = conn.dialect.name
    prepared.run(conn, _add_to(dialect, "quarters"), {
        "user_id": entry.user_id, "quarter": quarter(entry.created_at), "type": entry.type, "amount": entry.amount})
    if entry.type == "spend":
        prepared.run(conn, _add_to(dialect, "labels"), {
            "user_id": entry.user_id, "day": day(entry.created_at), "label": label(entry.feature, entry.description),
            "amount": entry.amount})


def _sums(rows: Iterable[tuple[str, str, int, str | None, str | None]]) -> tuple[Sums, Sums]:
    """The quarters and labels of one user's entries (created_at, type, amount, feature, description)."""
    quarters: Sums = defaultdict(int)
    labels: Sums = defaultdict(int)
    for created_at, entry_type, amount, feature, description in rows:
        quarters[quarter(created_at), entry_type] += amount
        if entry_type == "spend":
            labels[day(created_at), label(feature, description)] += amount
    return quarters, labels


def _per_user(conn: Connection) -> Iterator[tuple[int, Sums, Sums]]:
    """Each user's quarters and labels recomputed from their entries, one user at a time (memory: one user's)."""
    e = ledger_entries.c
    rows = conn.execute(
        select(e.user_id, e.created_at, e.type, e.amount, e.feature, e.description).order_by(e.user_id)
        .execution_options(stream_results=True, yield_per=20_000))
    for user_id, entries in itertools.groupby(rows, key=lambda row: row[0]):
        yield (user_id, *_sums(row[1:] for row in entries))


def _stored(conn: Connection, table: str) -> Iterator[tuple[int, Sums]]:
    t = usage_quarters if table == "quarters" else usage_labels
    period, key = (t.c.quarter, t.c.type) if table == "quarters" else (t.c.day, t.c.label)
    rows = conn.execute(select(t.c.user_id, period, key, t.c.amount).order_by(t.c.user_id)
                        .execution_options(stream_results=True, yield_per=20_000))
    for user_id, user_rows in itertools.groupby(rows, key=lambda row: row[0]):
        yield user_id, {(p, k): amount for _, p, k, amount in user_rows}


def rebuild(conn: Connection) -> int:
    """Recompute both tables from the ledger, one user at a time as the entries stream in (memory holds one
    user's sums, also for a large ledger in migration 0007); returns the rows written."""
    conn.execute(delete(usage_quarters))
    conn.execute(delete(usage_labels))
    written = 0
    for user_id, quarters, labels in _per_user(conn):
        q_rows = [{"user_id": user_id, "quarter": q, "type": t, "amount": a} for (q, t), a in quarters.items()]
        l_rows = [{"user_id": user_id, "day": d, "label": lb, "amount": a} for (d, lb), a in labels.items()]
        for table, rows in ((usage_quarters, q_rows), (usage_labels, l_rows)):
            for start in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[start:start + 5000])
        written += len(q_rows) + len(l_rows)
    return written


class _Stored:
    """One table's stored sums, streamed user by user in the order of user id, taken as the check reaches them."""

    def __init__(self, conn: Connection, table: str) -> None:
        self._rows = _stored(conn, table)
        self._next = next(self._rows, None)

    def take(self, user_id: int | None) -> list[tuple[int, Sums]]:
        """The sums of users before ``user_id`` (who have no entries: all of them, for None), then its own."""
        taken = []
        while self._next is not None and (user_id is None or self._next[0] <= user_id):
            taken.append(self._next)
            self._next = next(self._rows, None)
        return taken


def problems(conn: Connection) -> list[str]:
    """Where the stored sums differ from the ledger's entries, as sentences (empty when they agree). Streams
    the entries and both tables side by side in the order of user id: memory holds one user's sums."""
    found: list[str] = []
    stored = {"quarters": _Stored(conn, "quarters"), "labels": _Stored(conn, "labels")}

    def compare(table: str, user_id: int | None, want: Sums) -> None:
        have_by_user = dict(stored[table].take(user_id))
        for other in sorted(u for u in have_by_user if u != user_id):
            found.append(f"user {other}: usage {table} kept for a user with no entries")
        have = have_by_user.get(user_id, {}) if user_id is not None else {}
        if have != want:
            wrong = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            found.append(f"user {user_id}: usage {table} {wrong[:3]} differ from the ledger ({len(wrong)} in all)")

    for user_id, quarters, labels in _per_user(conn):
        compare("quarters", user_id, quarters)
        compare("labels", user_id, labels)
    compare("quarters", None, {})
    compare("labels", None, {})
    return found
