"""Purchases in flight on disk: atomic, thread-safe, survives a corrupt file."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

from desktop.core.purchase_records import PurchaseRecord, PurchaseRecords

URL = "http://127.0.0.1:8787"


def purchase(session_id: str, *, email: str = "a@example.com", url: str = URL, started_at: str = "",
             status: str = "pending") -> PurchaseRecord:
    return PurchaseRecord(backend_url=url, account_email=email, session_id=session_id, pack_id="starter",
                           pack_name="Starter", credits=100, started_at=started_at, status=status)


def test_add_update_remove(tmp_path: Path) -> None:
    store = PurchaseRecords(tmp_path / "data" / "pending.json")
    assert store.unfinished(URL, "a@example.com") == []
    added = store.add(purchase("cs_1"))
    assert added.started_at.endswith("Z")
    store.add(purchase("cs_2", email="b@example.com"))
    store.add(purchase("cs_3", url="http://other:1"))
    assert [p.session_id for p in store.unfinished(URL, "A@Example.com")] == ["cs_1"]
    assert store.get("cs_1").backend_id == URL  # filed under the URL's identity when none is given

    updated = store.update_status("cs_1", "pending")
    assert updated is not None and updated.finished_at is None
    paid = store.update_status("cs_1", "paid")
    assert paid is not None and paid.status == "paid" and paid.finished_at
    assert store.unfinished(URL, "a@example.com") == []
    assert store.get("cs_1") == paid
    assert store.update_status("cs_nope", "paid") is None

    assert store.remove("cs_2")
    assert not store.remove("cs_2")
    assert store.unfinished(URL, "b@example.com") == []

    reopened = PurchaseRecords(store.path)
    assert {p.session_id for p in reopened.recent(10)} == {"cs_1", "cs_3"}
    assert list(store.path.parent.iterdir()) == [store.path]  # no temporary files left behind


def test_recent_is_newest_first_and_keeps_the_last_finished(tmp_path: Path) -> None:
    store = PurchaseRecords(tmp_path / "pending.json", keep_finished=20)
    for n in range(30):
        store.add(purchase(f"cs_{n:02d}", started_at=f"2025-01-01T00:00:{n:02d}Z"))
        store.update_status(f"cs_{n:02d}", "paid")
    store.add(purchase("cs_open", started_at="2024-12-31T00:00:00Z"))
    recent = store.recent(50)
    assert len(recent) == 21
    assert recent[0].session_id == "cs_29"
    assert recent[-1].session_id == "cs_open"  # unfinished ones are never pruned
    assert [p.session_id for p in store.recent(3)] == ["cs_29", "cs_28", "cs_27"]
    assert all(p.finished_at for p in recent[:-1])


def test_a_corrupt_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "pending.json"
    for garbage in ("{not json", '["a list"]', '{"purchases": [{"session_id": 3}]}', "\udcff"):
        path.write_text(garbage, encoding="utf-8", errors="surrogateescape")
        store = PurchaseRecords(path)
        assert store.recent() == []
        assert not path.exists()
        assert (tmp_path / "pending.json.corrupt").exists()
        store.add(purchase("cs_1"))
        assert [p.session_id for p in PurchaseRecords(path).recent()] == ["cs_1"]


def test_file_format(tmp_path: Path) -> None:
    store = PurchaseRecords(tmp_path / "pending.json")
    store.add(replace(purchase("cs_1", started_at="2025-01-01T00:00:00Z"), backend_id="bundled:0123456789abcdef",
                      order_id="ord_1", amount=500, currency="usd", checkout_url="http://x/stub/checkout/cs_1",
                      tax="exclusive"))
    store.record("cs_1", "browser_opened", at="2025-01-01T00:00:01Z")
    store.update_status("cs_1", "paid", checked_at="2025-01-01T00:00:09Z")
    data = json.loads(store.path.read_text())
    assert data["version"] == 2
    assert data["purchases"][0] == {
        "backend_url": URL, "account_email": "a@example.com", "session_id": "cs_1", "pack_id": "starter",
        "pack_name": "Starter", "credits": 100, "started_at": "2025-01-01T00:00:00Z", "status": "paid",
        "finished_at": data["purchases"][0]["finished_at"], "backend_id": "bundled:0123456789abcdef",
        "order_id": "ord_1", "amount": 500, "currency": "usd", "checkout_url": "http://x/stub/checkout/cs_1",
        "return_url": None, "state": None, "last_checked_at": "2025-01-01T00:00:09Z", "tax": "exclusive",
        "events": [{"event": "browser_opened", "at": "2025-01-01T00:00:01Z", "detail": ""},
                   {"event": "paid", "at": "2025-01-01T00:00:09Z", "detail": ""}],
    }


def test_a_file_of_the_first_version_is_read_and_kept(tmp_path: Path) -> None:
    """Version 1 filed purchases by URL (the bundled backend's changed at every start)."""
    path = tmp_path / "pending.json"
    path.write_text(json.dumps({"version": 1, "purchases": [{
        "backend_url": "http://127.0.0.1:40123", "account_email": "a@example.com", "session_id": "cs_old",
        "pack_id": "starter", "pack_name": "Starter", "credits": 100, "started_at": "2025-01-01T00:00:00Z",
        "status": "pending", "finished_at": None}]}))
    store = PurchaseRecords(path)
    (old,) = store.unfinished("http://127.0.0.1:40123", "a@example.com")
    assert old.session_id == "cs_old" and old.events == () and old.amount is None
    assert store.refile("http://127.0.0.1:40123", "bundled:abc") == 1
    assert [p.session_id for p in store.unfinished("bundled:abc", "a@example.com")] == ["cs_old"]
    assert json.loads(path.read_text())["version"] == 2


def test_thread_safe(tmp_path: Path) -> None:
    store = PurchaseRecords(tmp_path / "pending.json")

    def work(n: int) -> None:
        store.add(purchase(f"cs_{n}"))
        store.update_status(f"cs_{n}", "pending")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.unfinished(URL, "a@example.com")) == 16
