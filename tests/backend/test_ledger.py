"""The ledger on a real database (a SQLite file, and PostgreSQL): balances add up, references post once,
spends never overdraw."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from backend import ledger, rollups
from backend.db import Database
from backend.entries import Entry


def balance(db: Database, user_id: int) -> int:
    with db.read() as conn:
        return ledger.balance(conn, user_id)


def history(db: Database, user_id: int, **kwargs: int) -> tuple[list[Entry], int | None]:
    with db.read() as conn:
        return ledger.history(conn, user_id, **kwargs)


def grant(db: Database, user_id: int, amount: int, reference: str) -> Entry | None:
    with db.transaction() as conn:
        return ledger.post(conn, user_id=user_id, type="purchase", amount=amount, reference=reference)


def spend(db: Database, user_id: int, amount: int, key: str, fingerprint: str = "f") -> tuple[Entry, bool]:
    with db.transaction() as conn:
        return ledger.spend(conn, user_id=user_id, amount=amount, idempotency_key=key, description="",
                            fingerprint=fingerprint)


def test_balance_follows_entries_and_each_entry_records_the_balance_after_it(db: Database) -> None:
    grant(db, 1, 100, "cs_1")
    grant(db, 1, 50, "cs_2")
    spend(db, 1, 30, "k1")
    assert balance(db, 1) == 120
    entries, cursor = history(db, 1, limit=10)
    assert [(e.type, e.amount, e.balance_after) for e in entries] == [
        ("spend", -30, 120), ("purchase", 50, 150), ("purchase", 100, 100)]
    assert cursor is None


def test_a_reference_is_posted_once(db: Database) -> None:
    first = grant(db, 1, 100, "cs_1")
    assert first is not None and history(db, 1, limit=1)[0] == [first]  # the entry answered is the row as stored
    assert grant(db, 1, 100, "cs_1") is None
    assert balance(db, 1) == 100


def test_users_are_kept_apart(db: Database) -> None:
    grant(db, 1, 100, "cs_1")
    grant(db, 2, 7, "cs_2")
    assert balance(db, 2) == 7
    assert [e.reference for e in history(db, 2, limit=10)[0]] == ["cs_2"]


def test_a_spend_beyond_the_balance_is_refused_and_writes_nothing(db: Database) -> None:
    grant(db, 1, 10, "cs_1")
    with pytest.raises(ledger.InsufficientCredits) as info:
        spend(db, 1, 11, "k1")
    assert (info.value.balance, info.value.amount) == (10, 11)
    assert balance(db, 1) == 10
    entry, new = spend(db, 1, 10, "k1")  # the refused key was not used up
    assert new and entry.balance_after == 0


def test_spend_idempotency(db: Database) -> None:
    grant(db, 1, 100, "cs_1")
    first, new = spend(db, 1, 40, "key", "same")
    again, new_again = spend(db, 1, 40, "key", "same")
    assert new and not new_again and again == first
    with pytest.raises(ledger.IdempotencyConflict):
        spend(db, 1, 41, "key", "other")
    assert balance(db, 1) == 60


def test_history_pages_newest_first(db: Database) -> None:
    for n in range(7):
        grant(db, 1, n + 1, f"cs_{n}")
    page1, cursor = history(db, 1, limit=3)
    page2, cursor2 = history(db, 1, limit=3, before=cursor)
    page3, cursor3 = history(db, 1, limit=3, before=cursor2)
    assert [e.amount for e in page1 + page2 + page3] == [7, 6, 5, 4, 3, 2, 1]
    assert cursor3 is None


def test_refund_entries_may_take_the_balance_below_zero(db: Database) -> None:
    grant(db, 1, 100, "cs_1")
    spend(db, 1, 100, "k")
    with db.transaction() as conn:
        ledger.post(conn, user_id=1, type="refund", amount=-100, reference="pi_1:500")
    assert balance(db, 1) == -100
    with pytest.raises(ledger.InsufficientCredits):
        spend(db, 1, 1, "k2")


def test_concurrent_spends_never_overdraw(db: Database) -> None:
    """16 threads, each with its own connection, race to spend 10 credits from a balance of 50."""
    grant(db, 1, 50, "cs_1")
    results: list[str] = []
    barrier = threading.Barrier(16)

    def worker(n: int) -> None:
        barrier.wait()
        try:
            spend(db, 1, 10, f"k{n}")
            results.append("ok")
        except ledger.InsufficientCredits:
            results.append("refused")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 5 and results.count("refused") == 11
    assert balance(db, 1) == 0


def test_check_invariants_finds_a_tampered_balance(db: Database) -> None:
    grant(db, 1, 100, "cs_1")
    with db.transaction() as conn:
        conn.execute(text("UPDATE balances SET balance = 999 WHERE user_id = 1"))
        assert ledger.check_invariants(conn) == ["user 1: cached balance 999 != sum of entries 100"]
        conn.execute(text("UPDATE balances SET balance = 100 WHERE user_id = 1"))


def test_a_rolled_back_transaction_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as conn:
        ledger.post(conn, user_id=1, type="purchase", amount=5, reference="cs_x")
        raise RuntimeError("crash half-way")
    assert balance(db, 1) == 0
    assert history(db, 1, limit=5)[0] == []


def test_spend_controls_see_the_balance_once_the_key_is_new_and_the_balance_covers_it(db: Database) -> None:
    grant(db, 1, 337, "cs_1")
    seen: list[int] = []

    def refuse_below_300(balance: int) -> None:  # a stand-in for the user's spend controls
        seen.append(balance)
        if balance < 300:
            raise RuntimeError("refused by the controls")

    def spend_checked(amount: int, key: str) -> tuple[Entry, bool]:
        with db.transaction() as conn:
            return ledger.spend(conn, user_id=1, amount=amount, idempotency_key=key, description="",
                                fingerprint="f", check=refuse_below_300)

    assert spend_checked(101, "k1")[0].balance_after == 236
    assert seen == [337]
    with pytest.raises(RuntimeError):
        spend_checked(101, "k2")  # refused by the controls: nothing written, the key not used up
    assert seen == [337, 236] and balance(db, 1) == 236
    assert spend_checked(101, "k1")[1] is False  # a replay is not a new spend: the controls are not asked
    with pytest.raises(ledger.InsufficientCredits):
        spend_checked(237, "k3")  # not enough credits is said before the controls are asked
    assert seen == [337, 236] and history(db, 1, limit=10)[0][0].reference == "k1"


@pytest.mark.parametrize("amount", [0, -7])
def test_a_spend_of_nothing_or_less_is_refused_and_writes_nothing(db: Database, amount: int) -> None:
    grant(db, 1, 337, "cs_1")
    with pytest.raises(ValueError, match=r"^a spend takes a positive number of credits$"):
        spend(db, 1, amount, f"k{amount}")
    assert balance(db, 1) == 337
    assert len(history(db, 1, limit=10)[0]) == 1


def test_a_spend_keeps_what_it_was_for_and_when(db: Database) -> None:
    grant(db, 1, 337, "cs_1")
    with db.transaction() as conn:
        entry, new = ledger.spend(conn, user_id=1, amount=113, idempotency_key="k1", description="Export a report",
                                  fingerprint="f", feature="export", created_at="2026-11-26T10:00:00.123Z")
        bare, _ = ledger.spend(conn, user_id=1, amount=1, idempotency_key="k2", description="", fingerprint="f")
    assert new and (entry.amount, entry.balance_after) == (-113, 224)
    assert (entry.description, entry.feature, entry.reference) == ("Export a report", "export", "k1")
    assert entry.created_at == "2026-11-26T10:00:00.123Z"
    assert (bare.description, bare.feature) == ("", None) and bare.created_at.endswith("Z")
    assert history(db, 1, limit=2)[0] == [bare, entry]  # read back as written


@pytest.mark.parametrize(("entries", "limit", "pages"), [
    (3, 3, [3]),  # exactly a page: no cursor to an empty page
    (4, 3, [3, 1]),
    (7, 3, [3, 3, 1]),
])
def test_history_pages_end_where_the_entries_do(db: Database, entries: int, limit: int, pages: list[int]) -> None:
    for n in range(entries):
        grant(db, 1, 10 + n, f"cs_{n}")
    seen, before = [], None
    sizes = []
    while True:
        page, before = history(db, 1, limit=limit, **({"before": before} if before else {}))
        sizes.append(len(page))
        seen += page
        if before is None:
            break
    assert sizes == pages
    assert [e.amount for e in seen] == [10 + n for n in reversed(range(entries))]


@pytest.mark.parametrize(("tampering", "problem"), [
    # A spend that took nothing is no spend.
    ("UPDATE ledger_entries SET amount = 0, balance_after = 337 WHERE type = 'spend'",
     "entry {spend}: a spend left balance 337"),
    # Neither is one that left the balance below zero.
    ("UPDATE ledger_entries SET amount = -338, balance_after = -1 WHERE type = 'spend'",
     "entry {spend}: a spend left balance -1"),
])
def test_check_invariants_finds_a_bad_spend(db: Database, tampering: str, problem: str) -> None:
    grant(db, 1, 337, "cs_1")
    spent, _ = spend(db, 1, 113, "k1")
    with db.transaction() as conn:
        conn.execute(text(tampering))
        conn.execute(text("UPDATE balances SET balance = (SELECT balance_after FROM ledger_entries "
                          "WHERE type = 'spend') WHERE user_id = 1"))
        found = ledger.check_invariants(conn)
        assert found[0] == problem.format(spend=spent.id)
        assert found[1:] == [  # the usage dashboard's sums no longer add up to the tampered entry either
            f"user 1: usage quarters [('{rollups.quarter(spent.created_at)}', 'spend')] differ from the ledger "
            "(1 in all)",
            f"user 1: usage labels [('{spent.created_at[:10]}', '')] differ from the ledger (1 in all)"]
        conn.execute(text("UPDATE ledger_entries SET amount = -113, balance_after = 224 WHERE type = 'spend'"))
        conn.execute(text("UPDATE balances SET balance = 224 WHERE user_id = 1"))


@pytest.mark.parametrize(("spent", "problems"), [
    (337, []),  # entries that sum to nothing need no balance row (it is made at the first change)
    (113, ["user 1: cached balance 0 != sum of entries 224"]),
])
def test_check_invariants_without_a_balance_row(db: Database, spent: int, problems: list[str]) -> None:
    grant(db, 1, 337, "cs_1")
    spend(db, 1, spent, "k1")
    with db.transaction() as conn:
        conn.execute(text("DELETE FROM balances WHERE user_id = 1"))
        assert ledger.check_invariants(conn) == problems
        conn.execute(text("INSERT INTO balances (user_id, balance) VALUES (1, :b)"), {"b": 337 - spent})


@pytest.mark.parametrize(("stray", "problems"), [(0, []), (1, ["user 2: balance 1 with no entries"])])
def test_check_invariants_and_a_balance_with_no_entries(db: Database, stray: int, problems: list[str]) -> None:
    grant(db, 1, 337, "cs_1")
    with db.transaction() as conn:
        conn.execute(text("INSERT INTO balances (user_id, balance) VALUES (2, :b)"), {"b": stray})
        assert ledger.check_invariants(conn) == problems
        conn.execute(text("UPDATE balances SET balance = 0 WHERE user_id = 2"))


@pytest.mark.parametrize(("type_", "amount", "message"), [
    ("purchase", 0, r"^a ledger entry moves a non-zero amount$"),
    ("gift", 7, r"^unknown entry type 'gift'$"),
])
def test_post_refuses_an_entry_that_moves_nothing_or_is_of_no_known_type(
    db: Database, type_: str, amount: int, message: str,
) -> None:
    with pytest.raises(ValueError, match=message), db.transaction() as conn:
        ledger.post(conn, user_id=1, type=type_, amount=amount, reference="cs_1")  # type: ignore[arg-type]
    assert history(db, 1, limit=5)[0] == []


def test_an_entry_posted_without_a_description_has_none(db: Database) -> None:
    entry = grant(db, 1, 337, "cs_1")
    assert entry is not None and entry.description == ""
