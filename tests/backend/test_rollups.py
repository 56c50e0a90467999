"""The usage dashboard's running sums: kept with every entry, recomputed by the check and by rebuild."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, text

from backend import ledger, rollups
from backend.db import Database
from backend.schema import ledger_entries


@pytest.mark.parametrize(("created_at", "quarter"), [
    ("2026-11-26T13:14:59.999Z", "2026-11-26T13:00:00.000Z"),
    ("2026-11-26T13:15:00.000Z", "2026-11-26T13:15:00.000Z"),
    ("2026-11-26T13:44:30.000Z", "2026-11-26T13:30:00.000Z"),
    ("2026-11-26T23:59:59.999Z", "2026-11-26T23:45:00.000Z"),
    ("t", "t"),  # no time at all (none is written so): its own quarter, never an error in a migration
])
def test_the_quarter_of_a_stored_time(created_at: str, quarter: str) -> None:
    assert rollups.quarter(created_at) == quarter


@pytest.mark.parametrize(("feature", "description", "label"), [
    ("ocr", "Scan a page", "ocr"), (None, "Scan a page", "Scan a page"), ("", "Scan", ""), (None, None, ""),
])
def test_a_spend_is_labelled_by_its_feature_else_its_description(feature: str | None, description: str | None,
                                                                  label: str) -> None:
    assert rollups.label(feature, description) == label


def _sums(db: Database) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with db.read() as conn:
        quarters = conn.execute(text("SELECT quarter, type, amount FROM usage_quarters ORDER BY quarter, type"))
        labels = conn.execute(text("SELECT day, label, amount FROM usage_labels ORDER BY day, label"))
        return [tuple(r) for r in quarters], [tuple(r) for r in labels]


def test_every_entry_is_counted_in_its_quarter_and_a_spend_in_its_label(db: Database) -> None:
    with db.transaction() as conn:
        for n, (kind, amount, at, feature) in enumerate([
            ("purchase", 1000, "2026-11-26T13:14:59.999Z", None),
            ("spend", -333, "2026-11-26T13:14:59.999Z", "ocr"),
            ("spend", -7, "2026-11-26T13:15:00.000Z", "ocr"),
            ("spend", -11, "2026-11-26T23:59:59.999Z", None),
            ("refund", -101, "2026-11-27T00:00:00.000Z", None),
        ]):
            ledger.post(conn, user_id=3, type=kind, amount=amount, reference=f"r{n}",  # type: ignore[arg-type]
                        description="Scan", feature=feature, created_at=at)
        assert rollups.problems(conn) == []
    assert _sums(db) == (
        [("2026-11-26T13:00:00.000Z", "purchase", 1000), ("2026-11-26T13:00:00.000Z", "spend", -333),
         ("2026-11-26T13:15:00.000Z", "spend", -7), ("2026-11-26T23:45:00.000Z", "spend", -11),
         ("2026-11-27T00:00:00.000Z", "refund", -101)],
        [("2026-11-26", "Scan", -11), ("2026-11-26", "ocr", -340)])


def test_rows_loaded_around_the_ledger_are_found_by_the_check_and_mended_by_rebuild(db: Database) -> None:
    with db.transaction() as conn:
        ledger.post(conn, user_id=3, type="purchase", amount=1000, reference="cs_1",
                    created_at="2026-11-26T13:00:00.000Z")
        conn.execute(insert(ledger_entries), [  # a bulk load that went around ledger.post
            {"user_id": 4, "type": "purchase", "amount": 50, "balance_after": 50, "reference": "cs_2",
             "description": "", "created_at": "2026-11-26T13:20:00.000Z"},
            {"user_id": 4, "type": "spend", "amount": -17, "balance_after": 33, "reference": "k",
             "description": "Scan", "created_at": "2026-11-26T13:21:00.000Z"}])
        conn.execute(text("INSERT INTO balances (user_id, balance) VALUES (4, 33)"))
        conn.execute(text(  # and its grant, as migration 0016 makes one of a balance from before grants
            "INSERT INTO grants (user_id, kind, source, reference, description, amount, opening, remaining, "
            "created_at, entry_id) SELECT 4, 'paid', 'migration', 'migration', '', 33, 33, 33, '', MAX(id) "
            "FROM ledger_entries"))
        conn.execute(text("UPDATE usage_quarters SET amount = 999 WHERE user_id = 3"))
        conn.execute(text("INSERT INTO usage_labels (user_id, day, label, amount) VALUES (5, '2026-11-26', 'x', -1)"))
        assert rollups.problems(conn) == [
            "user 3: usage quarters [('2026-11-26T13:00:00.000Z', 'purchase')] differ from the ledger (1 in all)",
            "user 4: usage quarters [('2026-11-26T13:15:00.000Z', 'purchase'), ('2026-11-26T13:15:00.000Z', "
            "'spend')] differ from the ledger (2 in all)",
            "user 4: usage labels [('2026-11-26', 'Scan')] differ from the ledger (1 in all)",
            "user 5: usage labels kept for a user with no entries",
        ]
        assert rollups.rebuild(conn) == 4
        assert rollups.problems(conn) == []
