"""The event store as processing writes it and support reads it, in process on both engines: an event's row is
written once on SQLite (looked up under the write lock, then kept with its outcome) and claimed then noted on
PostgreSQL; support finds an order's events on the two halves of the order_id / object_id index (migration 0013)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from backend import event_store, support
from backend.db import Database, utcnow
from backend.outcomes import Outcome
from tests.helpers.payments import new_order, paid_order, session_event


@contextmanager
def _event_store_sql(db: Database) -> Iterator[list[str]]:
    """The statements on webhook_events that SQLite's write connection runs inside the block."""
    seen: list[str] = []
    with db.transaction() as conn:  # the writer connection, made before tracing it
        driver = conn.connection.driver_connection
    assert driver is not None
    driver.set_trace_callback(lambda sql: seen.append(sql) if "webhook_events" in sql else None)
    try:
        yield seen
    finally:
        driver.set_trace_callback(None)


def test_an_event_is_kept_whole_with_its_outcome_and_a_duplicate_changes_nothing(db: Database) -> None:
    p = new_order(db)
    event = session_event(p)
    if db.is_sqlite:
        with _event_store_sql(db) as seen:
            assert p.apply(event) == Outcome.GRANTED
        # One look under the write lock and one INSERT with the outcome: no claim to note afterwards.
        assert [sql.split()[0] for sql in seen] == ["SELECT", "INSERT"]
        assert "'granted'" in seen[1] and "processing" not in seen[1]
    else:
        assert p.apply(event) == Outcome.GRANTED
    (stored,) = support.find_events(db, order_id=p.order_id)
    assert (stored.id, stored.outcome, stored.order_id, stored.object_id) == (
        event["id"], Outcome.GRANTED, p.order_id, p.session_id)
    assert stored.processed_at is not None and stored.received_at <= stored.processed_at
    assert event_store.stored_body(db, event["id"])[0] is not None
    event_store.recent.ids(db).pop(event["id"], None)  # as after a restart: the database answers
    assert p.apply(event) == Outcome.DUPLICATE
    assert [e.outcome for e in support.find_events(db, order_id=p.order_id)] == [Outcome.GRANTED]
    assert p.order().status == "paid"


def test_an_orders_events_are_those_naming_it_and_those_about_its_session_naming_no_order(db: Database) -> None:
    mine, other = paid_order(db), paid_order(db)
    with db.transaction() as conn:  # events about each session that matched no order when they came
        for p, event_id in ((mine, "evt_unmatched_mine"), (other, "evt_unmatched_other")):
            event_store.keep(conn, {"created": 1}, event_id, "checkout.session.expired", {"id": p.session_id},
                             source="webhook", body="{}", received_at=utcnow(), outcome=Outcome.UNKNOWN_ORDER,
                             detail="no order has this Checkout Session", order_id=None)
    by_session = support.find_events(db, session_id=mine.session_id)
    assert {e.id for e in by_session} == {e.id for e in support.find_events(db, order_id=mine.order_id)}
    assert "evt_unmatched_mine" in {e.id for e in by_session}
    assert "evt_unmatched_other" not in {e.id for e in by_session}
    assert sorted(str(e.outcome) for e in by_session) == sorted([Outcome.GRANTED, Outcome.UNKNOWN_ORDER])
    assert [e.id for e in support.find_events(db, session_id=mine.session_id, type="checkout.session.expired")] == [
        "evt_unmatched_mine"]
