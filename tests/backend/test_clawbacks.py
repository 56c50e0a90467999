"""Refunds and disputes against a real database file, in process: one rule, exactly once, in any order.

The rule: credits clawed back = floor(credits * min(amount, R + D) / amount). The numbers do not divide
evenly on purpose (333 credits for 1,000 cents), so that rounding is pinned.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe
from sqlalchemy import text

from backend import ledger, orders, webhooks
from backend.clawbacks import (
    DISPUTE_KNOWN,
    REFUND_COUNTED,
    REFUND_GIVEN_BACK,
    Cause,
    ChargeRefundsNews,
    DisputeNews,
    RefundNews,
    charge_refunds_news,
    credits_clawed_back,
    dispute_news,
    matched_through_charge,
    payment_intent_of,
    payment_of_charge,
    record_charge_refunds,
    record_dispute,
    record_refund,
    refund_news,
    resync,
    settle,
    unmatched_charges,
)
from backend.db import Database
from tests.helpers.payments import (
    Purchase,
    charge_refunded_event,
    database,
    dispute_event,
    event,
    new_order,
    paid_order,
    refund_event,
    session_event,
)
from tests.helpers.stripe_server import fixture, stripe_statuses


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database_ = database(tmp_path / "clawbacks.sqlite3")
    yield database_
    with database_.read() as conn:
        assert ledger.check_invariants(conn) == []
    database_.close()


@pytest.mark.parametrize(("credits", "amount", "refunded", "disputed", "expected"), [
    (333, 1000, 0, 0, 0),
    (333, 1000, 1, 0, 0),  # 0.333 of a credit: nothing yet
    (333, 1000, 4, 0, 1),  # 1.332
    (333, 1000, 333, 0, 110),  # 110.889
    (333, 1000, 999, 0, 332),  # 332.667
    (333, 1000, 1000, 0, 333),
    (333, 1000, 1500, 0, 333),  # a refund above the amount paid takes no more than was granted
    (333, 1000, 600, 600, 333),  # refund and dispute together are capped at the amount too
    (333, 1000, 250, 250, 166),  # 166.5
    (1, 1000, 999, 0, 0),
    (1, 1000, 1000, 0, 1),  # a 1-credit clawback, only at the full amount
    (1200, 5000, 1337, 0, 320),  # 320.88
    (7, 1, 1, 0, 7),  # a payment of one cent, refunded
])
def test_the_rule(credits: int, amount: int, refunded: int, disputed: int, expected: int) -> None:
    assert credits_clawed_back(credits=credits, amount=amount, refunded=refunded, disputed=disputed) == expected


@pytest.mark.parametrize("bad", [dict(amount=0), dict(refunded=-1), dict(disputed=-1), dict(credits=-1)])
def test_the_rule_refuses_impossible_figures(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="a positive amount paid and no negative figures"):
        credits_clawed_back(**{"credits": 333, "amount": 1000, "refunded": 0, "disputed": 0, **bad})


# Cumulative refunds (in cents of 1,000) at the rounding rule's edges: just below and at each credit's boundary
# (333/1000 of a credit a cent), then all of it. Each is one refund event through the real path.
REFUND_STEPS = [1, 3, 4, 6, 7, 9, 10, 330, 333, 334, 336, 337, 500, 664, 667, 668, 996, 997, 999, 1000]


def test_refunds_at_the_rounding_edges_take_exactly_the_credits_paid_for(db: Database) -> None:
    p = paid_order(db, credits=333, amount=1000)
    taken = 0
    for n, total in enumerate(REFUND_STEPS):
        before = REFUND_STEPS[n - 1] if n else 0
        outcome = p.apply(refund_event(p, f"re_{total:04d}", total - before, "succeeded", "refund.created"))
        expected = 333 * total // 1000
        assert outcome == ("clawed_back" if expected > taken else "no_change"), total
        taken = expected
        assert p.balance() == 333 - expected, total
    order = p.order()
    assert (order.status, order.credits_clawed_back, order.amount_refunded) == ("refunded", 333, 1000)
    refunds = [e for e in p.entries() if e[0] == "refund"]
    assert sum(amount for _, amount, _ in refunds) == -333 and len({ref for _, _, ref in refunds}) == len(refunds)


@pytest.mark.slow  # 1,000 refunds through the real path; the rounding rule itself is pinned above
def test_333_credits_refunded_one_cent_at_a_time(db: Database) -> None:
    p = paid_order(db, credits=333, amount=1000)
    for cents in range(1, 1001):
        assert p.apply(refund_event(p, f"re_{cents:04d}", 1, "succeeded", "refund.created")) in (
            "clawed_back", "no_change")
        if cents in (1, 3, 4, 333, 999, 1000):
            assert p.balance() == 333 - 333 * cents // 1000
    assert p.balance() == 0
    order = p.order()
    assert (order.status, order.credits_clawed_back, order.amount_refunded) == ("refunded", 333, 1000)
    refunds = [e for e in p.entries() if e[0] == "refund"]
    assert len(refunds) == 333 and all(amount == -1 for _, amount, _ in refunds)  # one entry per credit moved
    assert len({reference for _, _, reference in refunds}) == 333


def test_refund_objects_and_the_charge_count_one_refund_once_whatever_arrives_and_in_any_order(db: Database) -> None:
    for order in itertools.permutations(range(3)):
        p = paid_order(db, credits=333, amount=1000)
        events = [refund_event(p, "re_a" + p.order_id, 500, "pending", "refund.created"),
                  refund_event(p, "re_a" + p.order_id, 500, "succeeded", "refund.updated"),
                  charge_refunded_event(p, 500)]
        # Stripe's created times are those of the events, whatever order they are delivered in.
        for n in order:
            p.apply(events[n])
            p.apply(events[n])  # and each twice
        assert p.balance() == 333 - 166, order
        assert [e[0] for e in p.entries()] == ["purchase", "refund"], order
        assert p.order().status == "paid"


def test_charge_refunded_alone_is_enough(db: Database) -> None:
    p = paid_order(db)
    assert p.apply(charge_refunded_event(p, 300)) == "clawed_back"
    assert p.apply(charge_refunded_event(p, 1000)) == "clawed_back"
    assert p.balance() == 0 and p.order().status == "refunded"
    # Each entry names the object that caused it; a second change by the same object gets the next number.
    assert p.entries() == [("purchase", 333, p.session_id), ("refund", -99, p.charge_id),
                           ("refund", -234, f"{p.charge_id}#2")]


def test_each_clawback_names_its_own_refund(db: Database) -> None:
    p = paid_order(db)
    p.apply(refund_event(p, "re_1", 337, "succeeded", "refund.created"))
    p.apply(refund_event(p, "re_2", 501, "succeeded", "refund.created"))
    assert p.entries()[1:] == [("refund", -112, "re_1"), ("refund", -167, "re_2")]  # 112.221, then 279.054 in all


def test_refund_created_alone_claws_back_and_a_failed_refund_gives_the_credits_back(db: Database) -> None:
    p = paid_order(db)
    assert p.apply(refund_event(p, "re_1", 1000, "pending", "refund.created")) == "clawed_back"
    assert p.balance() == 0 and p.order().status == "refunded"
    assert p.apply(refund_event(p, "re_1", 1000, "failed", "refund.failed")) == "given_back"
    assert p.balance() == 333 and p.order().status == "paid"
    assert p.entries()[-1] == ("refund_reversal", 333, "re_1")


def test_a_cancelled_refund_gives_back_even_after_the_charge_counted_it(db: Database) -> None:
    p = paid_order(db)
    p.apply(refund_event(p, "re_1", 400, "pending", "refund.created"))
    p.apply(charge_refunded_event(p, 400))  # the charge's snapshot still counts it
    assert p.balance() == 333 - 133
    assert p.apply(refund_event(p, "re_1", 400, "canceled", "refund.updated")) == "given_back"
    assert p.balance() == 333
    # A later snapshot of the charge, without the cancelled refund, changes nothing more.
    assert p.apply(charge_refunded_event(p, 0)) == "no_change"
    assert p.balance() == 333


def test_news_older_than_what_we_hold_changes_nothing(db: Database) -> None:
    p = paid_order(db)
    pending = refund_event(p, "re_1", 1000, "pending", "refund.created", created=1_900_000_000)
    failed = refund_event(p, "re_1", 1000, "failed", "refund.failed", created=1_900_000_100)
    assert p.apply(failed) == "no_change"  # the failure arrives first: nothing was ever taken
    assert p.apply(pending) == "no_change"  # the older news of it being pending does not take anything
    assert p.balance() == 333


@pytest.mark.parametrize(("end", "balance", "status", "last"), [
    ("lost", 0, "charged_back", ("dispute", -333)),
    ("won", 333, "paid", ("dispute_reversal", 333)),
])
def test_a_dispute_holds_the_credits_until_it_ends(
    db: Database, end: str, balance: int, status: str, last: tuple[str, int]
) -> None:
    p = paid_order(db)
    assert p.apply(dispute_event(p, "dp_1", 1000, "needs_response", "charge.dispute.created")) == "clawed_back"
    assert p.balance() == 0 and p.order().status == "disputed"
    assert p.apply(dispute_event(p, "dp_1", 1000, "needs_response", "charge.dispute.funds_withdrawn")) == "no_change"
    p.apply(dispute_event(p, "dp_1", 1000, "under_review", "charge.dispute.updated"))
    p.apply(dispute_event(p, "dp_1", 1000, end, "charge.dispute.closed"))
    if end == "won":
        assert p.apply(dispute_event(p, "dp_1", 1000, "won", "charge.dispute.funds_reinstated")) == "no_change"
    assert p.balance() == balance and p.order().status == status
    assert [(t, a) for t, a, _ in p.entries()][-1] == last
    assert all(reference == "dp_1" for t, _, reference in p.entries() if t.startswith("dispute"))


def test_an_inquiry_that_closes_gives_back_what_it_held(db: Database) -> None:
    p = paid_order(db)
    p.apply(dispute_event(p, "dp_i", 500, "warning_needs_response", "charge.dispute.created"))
    assert p.balance() == 333 - 166 and p.order().status == "disputed"
    assert p.apply(dispute_event(p, "dp_i", 500, "warning_closed", "charge.dispute.closed")) == "given_back"
    assert p.balance() == 333 and p.order().status == "paid"


def test_refund_and_dispute_together_never_take_more_than_was_granted(db: Database) -> None:
    p = paid_order(db)
    p.apply(refund_event(p, "re_1", 600, "succeeded", "refund.created"))
    p.apply(dispute_event(p, "dp_1", 600, "needs_response", "charge.dispute.created"))
    assert p.balance() == 0 and p.order().credits_clawed_back == 333
    p.apply(dispute_event(p, "dp_1", 600, "won", "charge.dispute.closed"))  # back to the refund's share
    assert p.balance() == 333 - 199 and p.order().status == "paid"


def test_news_before_the_payment_is_applied_when_the_payment_is(db: Database) -> None:
    p = new_order(db)
    assert p.apply(refund_event(p, "re_early", 250, "succeeded", "refund.created")) == "recorded"
    assert p.apply(session_event(p)) == "granted"
    assert p.balance() == 333 - 83
    assert p.entries() == [("purchase", 333, p.session_id), ("refund", -83, "re_early")]


def test_an_event_of_the_other_mode_changes_nothing_and_says_why(db: Database) -> None:
    p = paid_order(db)
    live = refund_event(p, "re_live", 1000, "succeeded", "refund.created", livemode=True)
    assert p.apply(live) == "refused"
    assert p.balance() == 333
    with db.read() as conn:
        row = conn.execute(text("SELECT outcome, detail, body, order_id FROM webhook_events WHERE id = :id"),
                           {"id": live["id"]}).mappings().one()
    assert row["outcome"] == "refused" and "live-mode" in row["detail"] and '"re_live"' in row["body"]
    assert row["order_id"] == p.order_id  # support finds the refused event under the order it names
    # And a test-mode event under a live key is refused the same way.
    assert p.apply(refund_event(p, "re_t", 1000, "succeeded", "refund.created"), livemode=True) == "refused"


def test_a_refund_or_dispute_in_another_currency_changes_nothing(db: Database) -> None:
    p = paid_order(db, currency="usd")
    assert p.apply(refund_event(p, "re_eur", 1000, "succeeded", "refund.created", currency="eur")) == "refused"
    assert p.apply(dispute_event(p, "dp_eur", 1000, "lost", "charge.dispute.created", currency="eur")) == "refused"
    assert p.balance() == 333 and p.order().status == "paid"
    with db.read() as conn:
        details = conn.execute(text("SELECT detail FROM webhook_events WHERE outcome = 'refused'")).scalars().all()
    assert all("EUR" in d and "USD" in d for d in details) and len(details) == 2


def test_a_duplicate_is_a_no_op_and_a_replay_finds_nothing_left_to_do(db: Database) -> None:
    p = paid_order(db)
    refund = refund_event(p, "re_1", 500, "succeeded", "refund.created")
    assert p.apply(refund) == "clawed_back"
    assert p.apply(refund) == "duplicate"
    replayed = webhooks.replay(db, refund["id"], livemode=False)
    assert replayed.outcome == "no_change"
    assert p.balance() == 333 - 166
    with db.read() as conn:
        assert conn.execute(text("SELECT attempts FROM webhook_events WHERE id = :id"),
                            {"id": refund["id"]}).scalar() == 2


def test_events_we_do_not_act_on_are_kept_and_ignored(db: Database) -> None:
    p = paid_order(db)
    assert p.apply(event("customer.created", {"id": "cus_1", "object": "customer"})) == "ignored"
    assert p.balance() == 333


# --- check: every rule broken, one at a time ---------------------------------------------------------


def _tamper(db: Database, sql: str, **params: object) -> list[str]:
    """What check says with one change made (and then rolled back)."""
    with db.transaction() as conn:
        conn.execute(text(sql), params)
        problems = ledger.check_invariants(conn)
        conn.rollback()
    return problems


def test_check_finds_every_rule_broken_one_at_a_time(tmp_path: Path) -> None:
    db = database(tmp_path / "check.sqlite3")
    p = paid_order(db)
    q = paid_order(db)
    p.apply(refund_event(p, "re_1", 500, "succeeded", "refund.created"))
    with db.transaction() as conn:
        ledger.spend(conn, user_id=p.user_id, amount=7, idempotency_key="k", description="", fingerprint="f")
        assert ledger.check_invariants(conn) == []
        last = conn.execute(text("SELECT MAX(id) FROM ledger_entries")).scalar_one()  # the spend
    balance = 333 - 166 - 7
    assert _tamper(db, "UPDATE balances SET balance = balance + 1 WHERE user_id = :u", u=p.user_id) == [
        f"user {p.user_id}: cached balance {balance + 1} != sum of entries {balance}"]
    assert _tamper(db, "INSERT INTO balances (user_id, balance) VALUES (999, 5)") == [
        "user 999: balance 5 with no entries"]
    assert _tamper(db, "UPDATE ledger_entries SET balance_after = 1 WHERE id = :id", id=last) == [
        f"entry {last}: balance_after 1 != running sum {balance}"]
    spent_upwards = _tamper(db, "UPDATE ledger_entries SET amount = 7, balance_after = :b WHERE id = :id",
                            b=balance + 14, id=last)
    assert f"entry {last}: a spend left balance {balance + 14}" in spent_upwards
    assert _tamper(db, "UPDATE ledger_entries SET reference = :r WHERE user_id = :u AND type = 'purchase'",
                   r=p.session_id, u=q.user_id) == [f"purchase {p.session_id} granted 2 times"]
    db.close()


# --- reading Stripe's objects: what the rule needs, or nothing -----------------------------------------


def _stripe(name: str, **fields: object) -> dict[str, object]:
    obj = fixture(name)
    obj.update(fields)
    return obj


def test_a_refund_and_a_dispute_are_read_whole() -> None:
    refund = _stripe("refund", id="re_1", amount=337, currency="EUR", status="pending", payment_intent="pi_1",
                     charge={"id": "ch_1", "object": "charge"}, created=1_900_000_003)  # expanded or not, the id
    assert refund_news(refund, 1_900_000_007) == RefundNews("re_1", "pi_1", "ch_1", 337, "eur", "pending",
                                                            1_900_000_007, 1_900_000_003)
    assert refund_news({**refund, "created": "soon"}, 1).created is None  # type: ignore[union-attr]
    dispute = _stripe("dispute", id="dp_1", amount=337, currency="EUR", status="lost", reason="fraudulent",
                      payment_intent={"id": "pi_1"}, charge="ch_1")
    assert dispute_news(dispute, 1_900_000_007) == DisputeNews("dp_1", "pi_1", "ch_1", 337, "eur", "lost",
                                                               "fraudulent", 1_900_000_007)
    assert dispute_news({**dispute, "reason": 7}, 1).reason is None  # type: ignore[union-attr]
    charge = _stripe("charge", id="ch_1", payment_intent="pi_1", amount_refunded=337, currency="EUR")
    assert charge_refunds_news(charge, 1_900_000_007) == ChargeRefundsNews("pi_1", "ch_1", 337, "eur",
                                                                           1_900_000_007)
    assert charge_refunds_news({**charge, "id": None, "currency": None}, 1) == ChargeRefundsNews(
        "pi_1", "pi_1", 337, None, 1)  # named by its payment when the charge id is missing
    assert payment_intent_of(refund) == payment_intent_of(dispute) == payment_intent_of(charge) == "pi_1"


# Each row breaks one field the rule needs; the reader answers None (the webhook then says why).
BROKEN = [
    ("object", "payout"), ("object", None), ("id", None), ("id", ""), ("id", 7), ("amount", None), ("amount", -1),
    ("amount", True), ("amount", "337"), ("amount", 2**62), ("currency", None), ("currency", 840),
    ("status", None), ("status", 1),
]


@pytest.mark.parametrize(("field", "value"), BROKEN, ids=lambda v: repr(v))
@pytest.mark.parametrize("kind", ["refund", "dispute"])
def test_a_refund_or_dispute_lacking_what_the_rule_needs_is_not_news(kind: str, field: str, value: object) -> None:
    read = {"refund": refund_news, "dispute": dispute_news}[kind]
    good = _stripe(kind, id="x_1", amount=337, currency="usd", status="lost" if kind == "dispute" else "pending")
    assert read(good, 1) is not None
    assert read({**good, field: value}, 1) is None


@pytest.mark.parametrize(("field", "value"), [("object", "refund"), ("payment_intent", None), ("payment_intent", ""),
                                              ("amount_refunded", None), ("amount_refunded", -1)])
def test_a_charge_without_its_payment_or_refunded_amount_is_not_news(field: str, value: object) -> None:
    good = _stripe("charge", id="ch_1", payment_intent="pi_1", amount_refunded=337)
    assert charge_refunds_news(good, 1) is not None
    assert charge_refunds_news({**good, "object": None}, 1) is not None  # an object without its type is read
    assert charge_refunds_news({**good, field: value}, 1) is None


# --- keeping the newest news: (time at Stripe, how far along) decides -----------------------------------

# (first news, second news) as (as_of, status), whether the second replaced the first, the status kept.
REFUND_NEWS_ORDER = [
    ((100, "pending"), (101, "succeeded"), True, "succeeded"),
    ((101, "succeeded"), (100, "pending"), False, "succeeded"),  # older news, delivered late
    ((100, "pending"), (100, "succeeded"), True, "succeeded"),  # same second: further along wins
    ((100, "succeeded"), (100, "failed"), True, "failed"),  # a succeeded refund can still fail
    ((100, "failed"), (100, "succeeded"), False, "failed"),
    ((100, "succeeded"), (100, "succeeded"), False, "succeeded"),  # the same news twice
    ((100, "pending"), (100, "requires_action"), False, "pending"),  # same rank, same second: first kept
    ((100, "failed"), (100, "canceled"), False, "failed"),
    ((100, "some_new_status"), (100, "pending"), False, "some_new_status"),  # unknown statuses rank first
    ((100, "some_new_status"), (100, "succeeded"), True, "succeeded"),
    ((100, "pending"), (100, "some_new_status"), False, "pending"),
    ((101, "pending"), (100, "failed"), False, "pending"),  # time before rank
]
DISPUTE_NEWS_ORDER = [
    ((100, "warning_needs_response"), (100, "warning_under_review"), True, "warning_under_review"),
    ((100, "warning_under_review"), (100, "warning_closed"), True, "warning_closed"),
    ((100, "needs_response"), (100, "under_review"), True, "under_review"),
    ((100, "under_review"), (100, "lost"), True, "lost"),
    ((100, "won"), (100, "under_review"), False, "won"),
    ((100, "needs_response"), (100, "warning_under_review"), False, "needs_response"),
    # An appeal comes after a loss and ends in a win or a loss.
    ((100, "lost"), (100, "appeal_needs_response"), True, "appeal_needs_response"),
    ((100, "appeal_needs_response"), (100, "appeal_under_review"), True, "appeal_under_review"),
    ((100, "appeal_under_review"), (100, "won"), True, "won"),
    ((100, "appeal_under_review"), (100, "lost"), False, "appeal_under_review"),  # same second: see next
    ((100, "appeal_under_review"), (101, "lost"), True, "lost"),
    ((100, "needs_response"), (100, "prevented"), True, "prevented"),
]


def _kept(db: Database, table: str, object_id: str) -> str:
    with db.read() as conn:
        return conn.execute(text(f"SELECT status FROM {table} WHERE id = :id"), {"id": object_id}).scalar_one()  # noqa: S608


@pytest.mark.parametrize(("first", "second", "replaced", "kept"), REFUND_NEWS_ORDER, ids=str)
def test_only_newer_refund_news_replaces_what_we_hold(
    db: Database, first: tuple[int, str], second: tuple[int, str], replaced: bool, kept: str
) -> None:
    with db.transaction() as conn:
        assert record_refund(conn, RefundNews("re_1", "pi_1", "ch_1", 337, "usd", first[1], first[0])) is True
        assert record_refund(conn, RefundNews("re_1", "pi_1", "ch_1", 337, "usd", second[1], second[0])) is replaced
    assert _kept(db, "refunds", "re_1") == kept


@pytest.mark.parametrize(("first", "second", "replaced", "kept"), DISPUTE_NEWS_ORDER, ids=str)
def test_only_newer_dispute_news_replaces_what_we_hold(
    db: Database, first: tuple[int, str], second: tuple[int, str], replaced: bool, kept: str
) -> None:
    with db.transaction() as conn:
        assert record_dispute(conn, DisputeNews("dp_1", "pi_1", "ch_1", 337, "usd", first[1], None, first[0]))
        assert record_dispute(conn, DisputeNews("dp_1", "pi_1", "ch_1", 337, "usd", second[1], None,
                                                second[0])) is replaced
    assert _kept(db, "disputes", "dp_1") == kept


# (first, second) charge snapshots as (as_of, amount_refunded), whether the second replaced it, the amount kept.
@pytest.mark.parametrize(("first", "second", "replaced", "kept"), [
    ((100, 337), (101, 501), True, 501),
    ((101, 501), (100, 337), False, 501),  # an older snapshot, delivered late
    ((100, 337), (100, 501), True, 501),  # same second: refunds only add up
    ((100, 501), (100, 337), False, 501),
    ((100, 501), (100, 501), False, 501),
    ((100, 501), (101, 337), True, 337),  # a later snapshot wins even when smaller (a refund was cancelled)
], ids=str)
def test_only_a_newer_charge_snapshot_replaces_what_we_hold(
    db: Database, first: tuple[int, int], second: tuple[int, int], replaced: bool, kept: int
) -> None:
    with db.transaction() as conn:
        assert record_charge_refunds(conn, ChargeRefundsNews("pi_1", "ch_1", first[1], "usd", first[0])) is True
        assert record_charge_refunds(conn, ChargeRefundsNews("pi_1", "ch_1", second[1], "usd", second[0])) is replaced
        assert conn.execute(text("SELECT amount_refunded FROM payment_refunds WHERE payment_intent = 'pi_1'")
                            ).scalar_one() == kept


def test_each_entry_says_in_the_users_history_what_happened_to_which_pack(db: Database) -> None:
    p = paid_order(db, credits=333, amount=1000)
    p.apply(refund_event(p, "re_1", 337, "pending", "refund.created"))
    p.apply(refund_event(p, "re_1", 337, "failed", "refund.failed"))
    p.apply(dispute_event(p, "dp_1", 501, "needs_response", "charge.dispute.created"))
    p.apply(dispute_event(p, "dp_1", 501, "won", "charge.dispute.closed"))
    with db.read() as conn:
        entries = ledger.history(conn, p.user_id, limit=10)[0]
    assert [(e.type, e.amount, e.description) for e in reversed(entries)] == [
        ("purchase", 333, "Odd pack"),
        ("refund", -112, "Refund of Odd pack (refunded 3.37, disputed 0.00 of 10.00 USD)"),
        ("refund_reversal", 112, "Refund reversed for Odd pack (refunded 0.00, disputed 0.00 of 10.00 USD)"),
        ("dispute", -166, "Dispute on Odd pack (refunded 0.00, disputed 5.01 of 10.00 USD)"),
        ("dispute_reversal", 166,
         "Dispute closed in your favour for Odd pack (refunded 0.00, disputed 0.00 of 10.00 USD)"),
    ]


# --- dispute statuses: only an end in the merchant's favour gives back ---------------------------------

# The statuses a dispute goes through, and after each: the balance (333 credits for 1,000 cents, 501 of them
# disputed, so 166 credits held) and the order's status.
DISPUTE_LIVES = {
    "appeal won": [("needs_response", 167, "disputed"), ("lost", 167, "charged_back"),
                   ("appeal_needs_response", 167, "disputed"), ("appeal_under_review", 167, "disputed"),
                   ("won", 333, "paid")],
    "appeal lost": [("needs_response", 167, "disputed"), ("lost", 167, "charged_back"),
                    ("appeal_needs_response", 167, "disputed"), ("lost", 167, "charged_back")],
    "prevented": [("prevented", 167, "charged_back")],
    "inquiry prevented": [("warning_needs_response", 167, "disputed"), ("prevented", 167, "charged_back")],
    "unknown while open": [("needs_response", 167, "disputed"), ("arbitration_pending", 167, "disputed")],
    "unknown at first": [("some_future_status", 167, "disputed"), ("under_review", 167, "disputed")],
    "unknown then won": [("needs_response", 167, "disputed"), ("some_future_status", 167, "disputed"),
                         ("won", 333, "paid")],
}


def test_every_dispute_status_stripe_python_knows_is_one_we_know() -> None:
    """A new status in stripe-python fails here: decide what it means for the credits before trusting it."""
    assert stripe_statuses(stripe.Dispute) == DISPUTE_KNOWN
    assert {"pending", "requires_action", "succeeded", "failed", "canceled"} == REFUND_COUNTED | REFUND_GIVEN_BACK


@pytest.mark.parametrize("life", DISPUTE_LIVES)
def test_every_dispute_status_holds_or_gives_back_as_stripe_means_it(db: Database, life: str) -> None:
    p = paid_order(db, credits=333, amount=1000)
    for status, balance, order_status in DISPUTE_LIVES[life]:
        p.apply(dispute_event(p, "dp_1", 501, status))
        assert (status, p.balance(), p.order().status) == (status, balance, order_status)
    assert sum(amount for _, amount, _ in p.entries()) == p.balance()


def test_a_dispute_status_we_do_not_know_is_kept_and_logged_and_gives_nothing_back(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    p = paid_order(db, credits=333, amount=1000)
    p.apply(dispute_event(p, "dp_1", 1000, "needs_response", "charge.dispute.created"))
    assert p.apply(dispute_event(p, "dp_1", 1000, "resolved\x1b[2J", "charge.dispute.closed")) == "no_change"
    assert p.balance() == 0 and p.order().status == "disputed"
    assert _kept(db, "disputes", "dp_1") == "resolved\x1b[2J"
    line = next(r.getMessage() for r in caplog.records if "unknown_dispute_status" in r.getMessage())
    assert "dp_1" in line and "\x1b" not in line and "\\x1b" in line


# --- matched through the charge ----------------------------------------------------------------------


def _without_payment_intent(event: dict[str, object]) -> dict[str, object]:
    event["data"]["object"]["payment_intent"] = None  # type: ignore[index]
    return event


def test_a_refund_naming_only_its_charge_is_matched_through_a_charge_we_know(db: Database) -> None:
    p = paid_order(db, credits=333, amount=1000)
    p.apply(charge_refunded_event(p, 0))  # the charge, with its payment, as charge.refunded shows it
    assert p.apply(_without_payment_intent(refund_event(p, "re_1", 337, "succeeded", "refund.created"))) \
        == "clawed_back"
    assert p.balance() == 333 - 112
    # And a dispute naming only its charge, once a refund has linked the charge to its payment.
    q = paid_order(db, credits=333, amount=1000)
    q.apply(refund_event(q, "re_2", 1, "succeeded", "refund.created"))
    assert q.apply(_without_payment_intent(dispute_event(q, "dp_2", 501, "needs_response"))) == "clawed_back"
    assert q.balance() == 333 - 167
    with db.read() as conn:
        assert conn.execute(text("SELECT payment_intent FROM disputes WHERE id = 'dp_2'")).scalar_one() \
            == q.payment_intent


def test_a_refund_naming_a_charge_we_do_not_know_is_kept_for_reconcile(db: Database) -> None:
    p = paid_order(db, credits=333, amount=1000)
    assert p.apply(_without_payment_intent(refund_event(p, "re_1", 337, "succeeded", "refund.created"))) \
        == "recorded"
    assert p.balance() == 333
    with db.read() as conn:
        assert conn.execute(text("SELECT charge_id FROM refunds WHERE id = 're_1'")).scalar_one() == p.charge_id
    nothing = _without_payment_intent(refund_event(p, "re_2", 337, "succeeded", "refund.created"))
    nothing["data"]["object"]["charge"] = None  # type: ignore[index]
    assert p.apply(nothing) == "ignored"


# --- a charge's snapshot and the refunds it did not count -----------------------------------------------


def test_a_refund_made_after_the_charges_snapshot_that_fails_is_not_taken_out_of_it(db: Database) -> None:
    p = paid_order(db, credits=720, amount=1200)
    # Only the charge's snapshot knows of the first refund (600 of 1,200); a second, of 400, is made later
    # and fails: the snapshot never counted it, so 600 stay refunded (360 credits), not 200 (120).
    p.apply(charge_refunded_event(p, 600, created=1_900_000_100))
    assert p.balance() == 720 - 360
    later = refund_event(p, "re_b", 400, "pending", "refund.created", created=1_900_000_200)
    later["data"]["object"]["created"] = 1_900_000_200
    p.apply(later)
    assert p.balance() == 720 - 360  # the larger view: the snapshot's 600 (before Stripe's next snapshot)
    failed = refund_event(p, "re_b", 400, "failed", "refund.failed", created=1_900_000_300)
    failed["data"]["object"]["created"] = 1_900_000_200
    p.apply(failed)
    assert p.balance() == 720 - 360 and p.order().amount_refunded == 600


def test_a_refund_the_snapshot_counted_that_fails_later_is_taken_out_of_it(db: Database) -> None:
    p = paid_order(db, credits=720, amount=1200)
    made = refund_event(p, "re_a", 400, "succeeded", "refund.created", created=1_900_000_050)
    made["data"]["object"]["created"] = 1_900_000_050
    p.apply(charge_refunded_event(p, 1000, created=1_900_000_100))  # counts re_a and another 600
    assert p.balance() == 720 - 600
    failed = refund_event(p, "re_a", 400, "failed", "refund.failed", created=1_900_000_300)
    failed["data"]["object"]["created"] = 1_900_000_050
    p.apply(failed)
    assert p.balance() == 720 - 360 and p.order().amount_refunded == 600



@pytest.mark.parametrize(("created", "failed_at", "balance"), [
    (1_900_000_100, 1_900_000_100, 1000),  # made and failed in the snapshot's own second: counted, taken out
    (1_900_000_100, 1_900_000_099, 600),  # failed before the snapshot: the snapshot already left it out
    (1_900_000_101, 1_900_000_200, 600),  # made after the snapshot: never counted, nothing to take out
    (None, 1_900_000_200, 1000),  # kept before refunds had their creation time: taken out, as then
], ids=str)
def test_the_snapshot_and_a_failed_refund_at_its_edges(
    db: Database, created: int | None, failed_at: int, balance: int
) -> None:
    p = paid_order(db, credits=1000, amount=1000)  # a credit a cent: every cent counts
    p.apply(charge_refunded_event(p, 400, created=1_900_000_100))
    assert p.balance() == 600
    with db.transaction() as conn:
        record_refund(conn, RefundNews("re_a", p.payment_intent, p.charge_id, 400, "usd", "failed", failed_at, created))
        order = orders.by_id(conn, p.order_id, lock=True)
        assert order is not None
        settle(conn, order, Cause("refund", "re_a"))
    assert p.balance() == balance


def test_only_the_payments_own_refunds_and_disputes_in_its_currency_count(db: Database) -> None:
    p, other = paid_order(db), paid_order(db)
    with db.transaction() as conn:
        record_refund(conn, RefundNews("re_eur", p.payment_intent, p.charge_id, 500, "eur", "succeeded", 1))
        record_dispute(conn, DisputeNews("dp_eur", p.payment_intent, p.charge_id, 500, "eur", "lost", None, 1))
        record_refund(conn, RefundNews("re_x", other.payment_intent, other.charge_id, 500, "usd", "succeeded", 1))
        record_dispute(conn, DisputeNews("dp_x", other.payment_intent, other.charge_id, 500, "usd", "lost", None, 1))
        order = orders.by_id(conn, p.order_id, lock=True)
        assert order is not None
        assert settle(conn, order, Cause("refund", "re_eur")).outcome == "no_change"
    assert p.balance() == 333


def test_a_charge_is_matched_to_its_payment_by_any_row_that_names_both(db: Database) -> None:
    with db.transaction() as conn:
        record_refund(conn, RefundNews("re_alone", None, "ch_1", 1, "usd", "succeeded", 1))  # the charge alone
        assert payment_of_charge(conn, "ch_1") is None
        record_refund(conn, RefundNews("re_both", "pi_1", "ch_1", 1, "usd", "succeeded", 2))
        assert payment_of_charge(conn, "ch_1") == "pi_1"
        assert payment_of_charge(conn, "ch_2") is None
        record_dispute(conn, DisputeNews("dp_alone", None, "ch_1", 1, "usd", "lost", None, 1))
        assert unmatched_charges(conn) == ["ch_1"]
        assert matched_through_charge(conn, "ch_1", "pi_1") == 2
        assert unmatched_charges(conn) == []
        assert matched_through_charge(conn, "ch_1", "pi_other") == 0  # only those that lacked their payment
        assert payment_of_charge(conn, "ch_1") == "pi_1"


# --- re-reading Stripe's truth (reconcile): resync ------------------------------------------------------


def _stripe_refund(p: Purchase, refund_id: str, amount: int, status: str, created: int = 1_900_000_000) -> dict:
    return _stripe("refund", id=refund_id, amount=amount, currency=p.currency, status=status, created=created,
                   payment_intent=None, charge=p.charge_id)  # listed by payment: its own field may be null


def _stripe_dispute(p: Purchase, dispute_id: str, amount: int, status: str, created: int = 1_900_000_000) -> dict:
    return _stripe("dispute", id=dispute_id, amount=amount, currency=p.currency, status=status, created=created,
                   payment_intent=p.payment_intent, charge=p.charge_id)


def _resync(p: Purchase, refunds: list[dict], disputes: list[dict]) -> tuple[str, int]:
    with p.db.transaction() as conn:
        order = orders.by_id(conn, p.order_id, lock=True)
        assert order is not None
        settlement = resync(conn, order, refunds, disputes)
    return settlement.outcome, settlement.credits


def test_resync_keeps_what_stripe_has_now_and_settles_once(db: Database) -> None:
    p = paid_order(db, credits=333, amount=1000)
    assert _resync(p, [], []) == ("no_change", 0)
    assert _resync(p, [_stripe_refund(p, "re_1", 501, "succeeded")], []) == ("clawed_back", -166)  # 166.833
    assert _resync(p, [_stripe_refund(p, "re_1", 501, "succeeded")], []) == ("no_change", 0)  # once
    with db.read() as conn:
        assert conn.execute(text("SELECT payment_intent, as_of FROM refunds WHERE id = 're_1'")).one() \
            == (p.payment_intent, 1_900_000_000)  # kept as of its creation, under the payment it was listed for
    # Stripe says it failed since; what we kept is replaced by news just newer than it.
    assert _resync(p, [_stripe_refund(p, "re_1", 501, "failed")], []) == ("given_back", 166)
    with db.read() as conn:
        assert conn.execute(text("SELECT status, as_of FROM refunds WHERE id = 're_1'")).one() \
            == ("failed", 1_900_000_001)
    # An event made after the state Stripe showed still replaces it.
    assert p.apply(refund_event(p, "re_1", 501, "succeeded", created=1_900_000_002)) == "clawed_back"
    assert p.balance() == 333 - 166


def test_resync_gives_back_a_dispute_won_while_its_events_were_lost(db: Database) -> None:
    p = paid_order(db, credits=333, amount=1000)
    p.apply(dispute_event(p, "dp_1", 1000, "needs_response", "charge.dispute.created", created=1_900_000_050))
    assert p.balance() == 0
    assert _resync(p, [], [_stripe_dispute(p, "dp_1", 1000, "won")]) == ("given_back", 333)
    assert p.order().status == "paid" and p.entries()[-1] == ("dispute_reversal", 333, "dp_1")


def test_resync_settles_news_that_was_kept_but_never_applied(db: Database) -> None:
    p = paid_order(db, credits=333, amount=1000)
    with db.transaction() as conn:  # what the grant's race left before the payment's lock
        record_refund(conn, RefundNews("re_1", p.payment_intent, p.charge_id, 1000, "usd", "succeeded", 1))
    assert _resync(p, [_stripe_refund(p, "re_1", 1000, "succeeded", created=1)], []) == ("clawed_back", -333)
    assert p.entries()[-1] == ("refund", -333, "re_1") and p.order().status == "refunded"


def test_resync_skips_what_is_not_a_refund_or_dispute(db: Database) -> None:
    p = paid_order(db, credits=333, amount=1000)
    junk = [{"id": "re_x", "object": "refund"}, {"object": "refund", "status": "succeeded"},
            {**_stripe_refund(p, "re_y", 5, "succeeded"), "amount": "five"}]
    assert _resync(p, junk, [{"id": "dp_x", "status": 7}]) == ("no_change", 0)
    with db.read() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM refunds")).scalar_one() == 0
