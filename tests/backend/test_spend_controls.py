"""Spend controls in the spend's own transaction: caps per period in the user's time zone, the confirmation
flow, clawbacks that never count as spending, and the history of every change."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from backend import alerts, ledger, spend_controls, spending
from backend.db import Database
from backend.entries import CLAWBACK_REVERSAL_TYPES, CLAWBACK_TYPES, Entry
from backend.errors import ConfirmationRequired, IdempotencyConflict, InsufficientCredits, SpendCapReached
from tests.helpers.concurrency import all_at_once

USER = 7


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def grant(db: Database, amount: int, reference: str, user: int = USER, at: str | None = None) -> None:
    with db.transaction() as conn:
        ledger.post(conn, user_id=user, type="purchase", amount=amount, reference=reference,
                    created_at=at and utc(at).isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def controls(db: Database, user: int = USER, **changes: Any) -> spend_controls.Controls:
    with db.transaction() as conn:
        return spend_controls.update_controls(conn, user, changes)


def spend(db: Database, amount: int, key: str, *, at: str = "2026-11-26 12:00", token: str | None = None,
          user: int = USER, description: str = "", feature: str | None = None) -> Entry:
    """A spend at the instant ``at`` (UTC): a fixed one unless the test is about time."""
    request = spending.SpendRequest(amount, key, description, feature, token)
    return spending.spend(db, user, request, now=utc(at))


def balance(db: Database, user: int = USER) -> int:
    with db.read() as conn:
        return ledger.balance(conn, user)


def kinds(db: Database, user: int = USER) -> list[str]:
    with db.read() as conn:
        return [a.kind for a in reversed(alerts.page(conn, user, unread_only=False, limit=200)[0])]


# -- caps ---------------------------------------------------------------------------------------------------


def test_fifty_concurrent_spends_of_ten_against_a_daily_cap_of_one_hundred(db: Database) -> None:
    grant(db, 10_000, "cs_big")
    controls(db, **{"caps.day": 100})
    outcomes = all_at_once(50, lambda n: spend(db, 10, f"race-{n}"))
    refusals = [o for o in outcomes if isinstance(o, SpendCapReached)]
    assert sum(isinstance(o, Entry) for o in outcomes) == 10 and len(refusals) == 40
    assert all((r.period, r.cap) == ("day", 100) and r.used + 10 > 100 for r in refusals)
    assert balance(db) == 10_000 - 100
    # The cap's alerts were made once each, however many spends reached them together.
    assert kinds(db) == ["cap_80", "cap_100"]


@pytest.mark.engines("sqlite")
def test_spends_queued_for_the_write_lock_commit_together_each_with_its_own_answer(db: Database) -> None:
    """Group commit (Database.grouped): a host application's spends for several users at once share one commit (one
    sync of the disk); each still answers alone, a cap's refusal keeps its alert, a want of credits writes nothing."""
    for user in (1, 2, 3):
        grant(db, 337, f"cs_{user}", user=user)
    controls(db, user=3, **{"caps.day": 100})
    commits: list[int] = []
    event.listen(db.engine, "commit", lambda conn: commits.append(1))
    outcomes: dict[int, object] = {}

    def spender(user: int, amount: int) -> None:
        try:
            outcomes[user] = spend(db, amount, f"k-{user}", user=user)
        except Exception as error:
            outcomes[user] = error

    threads = [threading.Thread(target=spender, args=args) for args in ((1, 113), (2, 338), (3, 101))]
    with db.transaction():  # the write lock held while the three queue behind it
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(db._group) < 3:
            assert time.monotonic() < deadline, "the spends did not queue"
            time.sleep(0.005)
    for thread in threads:
        thread.join(10)
    assert len(commits) == 2  # the holder's, and one for the three spends
    assert isinstance(outcomes[1], Entry) and outcomes[1].balance_after == 224
    assert isinstance(outcomes[2], InsufficientCredits)
    assert isinstance(outcomes[3], SpendCapReached) and outcomes[3].details()["cap"] == 100
    assert (balance(db, 1), balance(db, 2), balance(db, 3)) == (224, 337, 337)
    assert kinds(db, 2) == [] and kinds(db, 3) == ["cap_100"]


def test_a_refusal_names_the_cap_when_it_resets_and_changes_nothing(db: Database) -> None:
    grant(db, 1000, "cs_1")
    controls(db, timeZone="Europe/Paris", **{"caps.day": 100, "caps.week": 150})
    spend(db, 97, "a", at="2026-11-26 10:00")
    with pytest.raises(SpendCapReached) as info:
        spend(db, 4, "b", at="2026-11-26 22:59:59")  # 23:59:59 in Paris: still Thursday
    assert info.value.details() == {"period": "day", "cap": 100, "used": 97, "resetsAt": "2026-11-26T23:00:00.000Z"}
    assert balance(db) == 903
    spend(db, 3, "c", at="2026-11-26 22:59:59")  # exactly up to the cap is allowed
    spend(db, 40, "d", at="2026-11-26 23:00:00")  # Friday in Paris: a new day, the same week
    # Friday's 40 + 11 is under the day's cap; the week's 140 + 11 is over it: the weekly cap refuses.
    with pytest.raises(SpendCapReached) as info:
        spend(db, 11, "e", at="2026-11-27 09:00")
    assert info.value.details() == {"period": "week", "cap": 150, "used": 140, "resetsAt": "2026-11-29T23:00:00.000Z"}
    assert balance(db) == 1000 - 140


# Caps of 97 a day, 101 a week and 1,013 a month (UTC); spends before the one refused; the refusal's details.
@pytest.mark.parametrize(("before", "at", "amount", "over", "named"), [
    # The day's and the week's caps: the week's resets last.
    ([("2026-11-23 08:00", 60), ("2026-11-26 08:00", 37)], "2026-11-26 12:00", 61, ["day", "week"],
     {"period": "week", "cap": 101, "used": 97, "resetsAt": "2026-11-30T00:00:00.000Z"}),
    # All three on Thursday 26 November: the month's resets last (1 December, the week's 30 November).
    ([("2026-11-02 08:00", 900), ("2026-11-23 08:00", 41), ("2026-11-26 08:00", 41)], "2026-11-26 12:00", 57,
     ["day", "week", "month"], {"period": "month", "cap": 1013, "used": 982, "resetsAt": "2026-12-01T00:00:00.000Z"}),
    # All three on Monday 30 November: now the week's resets last (7 December), after the month's.
    ([("2026-11-02 08:00", 900), ("2026-11-30 08:00", 41)], "2026-11-30 12:00", 73,
     ["day", "week", "month"], {"period": "week", "cap": 101, "used": 41, "resetsAt": "2026-12-07T00:00:00.000Z"}),
], ids=["day-and-week", "all-three-month-last", "all-three-week-last"])
def test_when_several_caps_refuse_the_one_that_resets_last_is_named_and_each_alerts(
    db: Database, before: list[tuple[str, int]], at: str, amount: int, over: list[str], named: dict[str, object],
) -> None:
    grant(db, 2000, "cs_1", at="2026-11-01 00:00")
    for n, (when, spent) in enumerate(before):
        spend(db, spent, f"before-{n}", at=when)
    controls(db, **{"caps.day": 97, "caps.week": 101, "caps.month": 1013})  # set after: 900 is over them
    with pytest.raises(SpendCapReached) as info:
        spend(db, amount, "refused", at=at)
    assert (info.value.amount, info.value.details()) == (amount, named)
    with db.read() as conn:
        made = alerts.page(conn, USER, unread_only=False, limit=200)[0]
    assert sorted(a.data["period"] for a in made if a.kind == "cap_100") == sorted(over)
    assert balance(db) == 2000 - sum(spent for _, spent in before)


def test_a_repeated_key_answers_as_the_first_time_even_once_the_cap_is_reached(db: Database) -> None:
    grant(db, 500, "cs_1")
    controls(db, **{"caps.day": 50})
    first = spend(db, 50, "once")
    assert spend(db, 50, "once") == first
    with pytest.raises(SpendCapReached):
        spend(db, 1, "twice")


def test_a_spend_keeps_what_it_was_for_and_its_key_answers_only_the_same_spend(db: Database) -> None:
    grant(db, 1013, "cs_1")
    entry = spend(db, 97, "k", description="Export a report", feature="export", at="2026-11-26 12:00:00.041")
    assert (entry.amount, entry.balance_after, entry.description, entry.feature, entry.reference) == (
        -97, 916, "Export a report", "export", "k")
    assert entry.created_at == "2026-11-26T12:00:00.041Z"
    with db.read() as conn:
        assert ledger.history(conn, USER, limit=1)[0] == [entry]
    assert spend(db, 97, "k", description="Export a report", feature="export") == entry  # the same spend again
    for other in ({"amount": 41}, {"description": "Print a report"}, {"feature": "print"}, {"feature": None}):
        request = {"amount": 97, "description": "Export a report", "feature": "export", **other}
        with pytest.raises(IdempotencyConflict):
            spend(db, request.pop("amount"), "k", **request)  # type: ignore[arg-type]
    assert balance(db) == 916


def test_not_enough_credits_is_said_before_a_cap(db: Database) -> None:
    grant(db, 5, "cs_1")
    controls(db, **{"caps.day": 3})
    with pytest.raises(InsufficientCredits):
        spend(db, 6, "k")
    with pytest.raises(SpendCapReached):
        spend(db, 4, "k")


def test_lowering_a_cap_applies_at_once_and_undoes_no_spend(db: Database) -> None:
    grant(db, 1000, "cs_1")
    controls(db, **{"caps.month": 500})
    spend(db, 300, "a", at="2026-11-10 12:00")
    controls(db, **{"caps.month": 200})
    with pytest.raises(SpendCapReached) as info:
        spend(db, 1, "b", at="2026-11-10 12:01")
    assert (info.value.cap, info.value.used) == (200, 300)
    assert balance(db) == 700
    spend(db, 1, "c", at="2026-12-01 00:00")  # a new month
    controls(db, **{"caps.month": None})
    spend(db, 650, "d", at="2026-12-01 00:01")
    assert balance(db) == 49


def test_a_cap_of_zero_stops_all_spending(db: Database) -> None:
    grant(db, 10, "cs_1")
    controls(db, **{"caps.week": 0})
    with pytest.raises(SpendCapReached) as info:
        spend(db, 1, "k")
    assert info.value.details()["used"] == 0


@pytest.mark.parametrize("entry_type", [*CLAWBACK_TYPES, *CLAWBACK_REVERSAL_TYPES])
def test_clawbacks_and_adjustments_never_count_as_spending(db: Database, entry_type: str) -> None:
    grant(db, 1000, "cs_1", at="2026-11-26 08:00")
    controls(db, **{"caps.day": 100})
    spend(db, 60, "a", at="2026-11-26 09:00")
    moved = -333 if entry_type in CLAWBACK_TYPES else 333  # taken back, or given back
    with db.transaction() as conn:
        ledger.post(conn, user_id=USER, type=entry_type, amount=moved, reference="re_1")
        ledger.post(conn, user_id=USER, type="adjustment", amount=-7, reference="support-1")
    spend(db, 40, "b", at="2026-11-26 10:00")  # 60 + 40 = the cap, whatever was taken or given back
    with pytest.raises(SpendCapReached) as info:
        spend(db, 1, "c", at="2026-11-26 11:00")
    assert info.value.used == 100
    assert balance(db) == 1000 - 100 + moved - 7


def test_the_time_zone_decides_the_day_across_the_autumn_clock_change(db: Database) -> None:
    """Paris on 25 October 2026 has 25 hours: 22:00 UTC on the 24th to 23:00 UTC on the 25th."""
    grant(db, 1000, "cs_1", at="2026-10-01 00:00")
    controls(db, timeZone="Europe/Paris", **{"caps.day": 100})
    spend(db, 100, "early", at="2026-10-24 22:30")  # 00:30 in Paris on Sunday the 25th
    with pytest.raises(SpendCapReached) as info:
        spend(db, 1, "late", at="2026-10-25 22:59")  # 23:59 in Paris, 24 h 29 min later: the same day
    assert info.value.resets_at == "2026-10-25T23:00:00.000Z"
    spend(db, 100, "monday", at="2026-10-25 23:00")  # Monday in Paris
    spend(db, 100, "saturday", at="2026-10-24 21:59")  # 23:59 on Saturday: the day before, counted apart


def test_the_day_across_the_spring_clock_change_and_a_change_of_time_zone(db: Database) -> None:
    grant(db, 1000, "cs_1", at="2026-03-01 00:00")
    controls(db, timeZone="Europe/Paris", **{"caps.day": 100})
    spend(db, 100, "a", at="2026-03-28 23:00")  # 00:00 in Paris on the 23-hour Sunday
    with pytest.raises(SpendCapReached) as info:
        spend(db, 1, "b", at="2026-03-29 21:59")
    assert info.value.resets_at == "2026-03-29T22:00:00.000Z"
    # Seen from New York the same spends fall on Saturday the 28th, so Sunday there is untouched.
    controls(db, timeZone="America/New_York")
    spend(db, 100, "c", at="2026-03-29 21:59")


# -- confirmation -----------------------------------------------------------------------------------------


def test_above_the_threshold_a_spend_needs_a_token_good_once_for_that_amount_and_key(db: Database) -> None:
    grant(db, 1000, "cs_1")
    controls(db, confirmAbove=50)
    spend(db, 50, "at-threshold")  # not above it
    with pytest.raises(ConfirmationRequired) as info:
        spend(db, 120, "big")
    details = info.value.details()
    token = str(details["confirmationToken"])
    assert details == {"confirmationToken": token, "amount": 120, "balanceAfter": 950 - 120}
    assert balance(db) == 950  # asking spent nothing
    for other_amount, other_key in ((121, "big"), (120, "other-key")):
        with pytest.raises(ConfirmationRequired) as wrong:
            spend(db, other_amount, other_key, token=token)
        assert wrong.value.retried and wrong.value.token != token
    entry = spend(db, 120, "big", token=token)
    assert entry.balance_after == 830
    assert spend(db, 120, "big", token=token) == entry  # the same request again: answered, not spent twice
    assert spend(db, 120, "big") == entry
    with pytest.raises(ConfirmationRequired):
        spend(db, 120, "big-2", token=token)  # used
    assert balance(db) == 830


def test_a_confirmation_token_expires(db: Database) -> None:
    grant(db, 1000, "cs_1")
    controls(db, confirmAbove=0)
    with pytest.raises(ConfirmationRequired) as info:
        spend(db, 5, "k", at="2026-11-26 12:00")
    late = utc("2026-11-26 12:00") + spending.CONFIRMATION_TTL + timedelta(seconds=1)
    with pytest.raises(ConfirmationRequired):
        spend(db, 5, "k", at=late.replace(tzinfo=None).isoformat(), token=info.value.token)
    assert balance(db) == 1000


def test_caps_are_checked_before_asking_for_confirmation(db: Database) -> None:
    grant(db, 1000, "cs_1")
    controls(db, confirmAbove=10, **{"caps.day": 100})
    with pytest.raises(SpendCapReached):
        spend(db, 101, "k")


def test_one_token_sent_by_many_at_once_spends_once(db: Database) -> None:
    grant(db, 1000, "cs_1")
    controls(db, confirmAbove=10)
    with pytest.raises(ConfirmationRequired) as info:
        spend(db, 100, "k")
    entries = all_at_once(8, lambda _: spend(db, 100, "k", token=info.value.token))
    assert len({e.id for e in entries}) == 1 and balance(db) == 900  # type: ignore[union-attr]


# -- settings and their history -------------------------------------------------------------------------


def test_every_change_is_kept_with_its_old_and_new_value(db: Database) -> None:
    grant(db, 100, "cs_1")
    with db.read() as conn:
        assert spend_controls.load(conn, USER) == spend_controls.Controls()
    controls(db, timeZone="Asia/Tokyo", **{"caps.day": 100, "caps.week": None}, lowBalanceAlerts=[50, 10, 50])
    controls(db, **{"caps.day": 80}, confirmAbove=25)
    controls(db, **{"caps.day": 80})  # no change, nothing recorded
    with db.read() as conn:
        now = spend_controls.load(conn, USER)
        changes = [(c["field"], c["old"], c["new"]) for c in spend_controls.history(conn, USER)]
    assert now.as_json() == {"timeZone": "Asia/Tokyo", "caps": {"day": 80, "week": None, "month": None},
                             "confirmAbove": 25, "lowBalanceAlerts": [50, 10]}
    assert changes == [  # newest first
        ("confirmAbove", None, 25), ("caps.day", 100, 80),
        ("lowBalanceAlerts", [], [50, 10]), ("caps.day", None, 100), ("timeZone", "UTC", "Asia/Tokyo"),
    ]


def test_the_history_holds_the_latest_hundred_changes_newest_first(db: Database) -> None:
    for cap in range(1, 104):  # 103 changes
        controls(db, **{"caps.day": cap})
    with db.read() as conn:
        kept = spend_controls.history(conn, USER)
    assert len(kept) == 100
    assert [(c["field"], c["old"], c["new"]) for c in (kept[0], kept[-1])] == [("caps.day", 102, 103),
                                                                              ("caps.day", 3, 4)]
    assert all(list(c) == ["changedAt", "field", "old", "new"] for c in kept)
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", str(c["changedAt"])) for c in kept)
    assert [c["changedAt"] for c in kept] == sorted((c["changedAt"] for c in kept), reverse=True)  # type: ignore[type-var]


def test_controls_belong_to_their_user(db: Database) -> None:
    grant(db, 100, "cs_1", user=1)
    grant(db, 100, "cs_2", user=2)
    controls(db, user=1, **{"caps.day": 10})
    spend(db, 50, "k", user=2)
    with pytest.raises(SpendCapReached):
        spend(db, 11, "k", user=1)


@pytest.mark.parametrize(("delay", "accepted"), [
    (timedelta(minutes=14, seconds=59, milliseconds=999), True),
    (timedelta(minutes=15), False),  # 15 minutes to the millisecond: expired
], ids=["just-in-time", "at-fifteen-minutes"])
def test_a_confirmation_token_is_good_for_fifteen_minutes(db: Database, delay: timedelta, accepted: bool) -> None:
    grant(db, 1000, "cs_1")
    controls(db, confirmAbove=41)
    asked = utc("2026-11-26 12:00")
    with pytest.raises(ConfirmationRequired) as info:
        spend(db, 97, "k", at=asked.replace(tzinfo=None).isoformat())
    retry_at = (asked + delay).replace(tzinfo=None).isoformat()
    if accepted:
        assert spend(db, 97, "k", at=retry_at, token=info.value.token).balance_after == 903
    else:
        with pytest.raises(ConfirmationRequired) as again:
            spend(db, 97, "k", at=retry_at, token=info.value.token)
        assert again.value.retried and again.value.token != info.value.token
        assert balance(db) == 1000


def test_what_a_confirmation_says_the_first_time_and_after_a_bad_token(db: Database) -> None:
    grant(db, 1013, "cs_1")
    controls(db, confirmAbove=41)
    assert spend(db, 41, "at-threshold").balance_after == 972  # not above it: no question asked
    with pytest.raises(ConfirmationRequired) as first:
        spend(db, 42, "k")
    assert (first.value.retried, first.value.why) == (False, "It is above your confirmation threshold of 41 credits.")
    assert first.value.details() == {"confirmationToken": first.value.token, "amount": 42, "balanceAfter": 930}
    with pytest.raises(ConfirmationRequired) as second:
        spend(db, 42, "k", token="cfm_not-one-we-gave")
    assert second.value.retried and second.value.why == (
        "The confirmation token is used, expired or for another spend; here is a new one.")
    # Both tokens handed out are good (the first was not used): the second goes ahead, once.
    assert spend(db, 42, "k", token=second.value.token).balance_after == 930
    assert balance(db) == 930


def test_a_confirmation_token_is_good_only_for_the_user_it_was_given_to(db: Database) -> None:
    for user in (1, 2):
        grant(db, 1000, f"cs_{user}", user=user)
        controls(db, user=user, confirmAbove=41)
    with pytest.raises(ConfirmationRequired) as info:
        spend(db, 97, "same-key", user=1)
    with pytest.raises(ConfirmationRequired) as other:
        spend(db, 97, "same-key", user=2, token=info.value.token)
    assert other.value.retried
    assert (balance(db, 1), balance(db, 2)) == (1000, 1000)
    assert spend(db, 97, "same-key", user=1, token=info.value.token).balance_after == 903


def test_asking_for_another_confirmation_leaves_the_earlier_tokens_good(db: Database) -> None:
    """Tokens of spends not yet confirmed stay good when more are handed out (only used or expired ones go)."""
    grant(db, 1000, "cs_1")
    controls(db, confirmAbove=41)
    tokens = {}
    for minute, key in enumerate(("a", "b", "c")):
        with pytest.raises(ConfirmationRequired) as info:
            spend(db, 97, key, at=f"2026-11-26 12:{minute * 7:02d}")
        tokens[key] = info.value.token
    spend(db, 97, "b", at="2026-11-26 12:14", token=tokens["b"])  # used now
    with pytest.raises(ConfirmationRequired):
        spend(db, 53, "d", at="2026-11-26 12:14:59")  # another token handed out
    assert spend(db, 97, "c", at="2026-11-26 12:14:59.999", token=tokens["c"]).balance_after == 806
    assert spend(db, 97, "a", at="2026-11-26 12:14:59.999", token=tokens["a"]).balance_after == 709


def test_a_confirmed_spend_is_still_checked_against_the_balance_and_the_caps(db: Database) -> None:
    grant(db, 100, "cs_1")
    controls(db, confirmAbove=41, **{"caps.day": 97})
    with pytest.raises(ConfirmationRequired) as info:
        spend(db, 59, "big")
    spend(db, 41, "small")  # 59 left; 41 of the day's 97 spent
    with pytest.raises(SpendCapReached):
        spend(db, 59, "big", token=info.value.token)  # 41 + 59 = 100 > 97
    controls(db, **{"caps.day": None})
    spend(db, 1, "one")  # 58 left
    with pytest.raises(InsufficientCredits):
        spend(db, 59, "big", token=info.value.token)
    grant(db, 13, "cs_2")  # 71
    # Refused for the cap and for the balance, the token was not used up.
    assert spend(db, 59, "big", token=info.value.token).balance_after == 12


# -- what is spent so far in each period (the controls page's "periods") ------------------------------------

# Spends at instants (UTC) on both sides of Paris's and Kolkata's midnights, each of an amount no sum of the
# others makes: which of them a period counts shows where it starts and ends.
SPENDS = [
    ("2026-10-31 22:30", 13),  # Saturday 31 October in Paris; Sunday 1 November in Kolkata
    ("2026-11-22 22:59:59.999", 29),  # the last instant of Sunday 22 November in Paris
    ("2026-11-22 23:00", 31),  # Monday 23 November in Paris
    ("2026-11-25 22:59:59.999", 37),  # the last instant of Wednesday in Paris; Thursday in Kolkata
    ("2026-11-25 23:00", 41),  # Thursday 26 November in Paris
    ("2026-11-26 18:30", 43),  # Thursday evening in Paris; Friday 27 November in Kolkata
    ("2026-11-26 23:00", 47),  # Friday 27 November in Paris
]


def period(cap: int | None, used: int, starts: str, resets: str) -> dict[str, object]:
    return {"cap": cap, "used": used, "startsAt": starts, "resetsAt": resets}


@pytest.mark.parametrize(("time_zone", "now", "expected"), [
    ("Europe/Paris", "2026-11-26 12:00", {
        "day": period(97, 41 + 43, "2026-11-25T23:00:00.000Z", "2026-11-26T23:00:00.000Z"),
        "week": period(None, 31 + 37 + 41 + 43 + 47, "2026-11-22T23:00:00.000Z", "2026-11-29T23:00:00.000Z"),
        "month": period(1013, 29 + 31 + 37 + 41 + 43 + 47, "2026-10-31T23:00:00.000Z", "2026-11-30T23:00:00.000Z"),
    }),
    ("Europe/Paris", "2026-11-26 23:00", {  # midnight in Paris: Friday has begun
        "day": period(97, 47, "2026-11-26T23:00:00.000Z", "2026-11-27T23:00:00.000Z"),
        "week": period(None, 31 + 37 + 41 + 43 + 47, "2026-11-22T23:00:00.000Z", "2026-11-29T23:00:00.000Z"),
        "month": period(1013, 29 + 31 + 37 + 41 + 43 + 47, "2026-10-31T23:00:00.000Z", "2026-11-30T23:00:00.000Z"),
    }),
    ("Asia/Kolkata", "2026-11-26 12:00", {  # 17:30 on Thursday there
        "day": period(97, 37 + 41, "2026-11-25T18:30:00.000Z", "2026-11-26T18:30:00.000Z"),
        "week": period(None, 29 + 31 + 37 + 41 + 43 + 47, "2026-11-22T18:30:00.000Z", "2026-11-29T18:30:00.000Z"),
        "month": period(1013, 13 + 29 + 31 + 37 + 41 + 43 + 47, "2026-10-31T18:30:00.000Z",
                        "2026-11-30T18:30:00.000Z"),
    }),
], ids=["paris-thursday", "paris-friday", "kolkata-thursday"])
def test_each_period_shows_what_is_spent_in_it_and_when_it_resets(
    db: Database, time_zone: str, now: str, expected: dict[str, dict[str, object]],
) -> None:
    grant(db, 1000, "cs_1", at="2026-10-01 00:00")
    grant(db, 1000, "cs_other", user=USER + 1, at="2026-10-01 00:00")
    for n, (at, amount) in enumerate(SPENDS):
        spend(db, amount, f"k{n}", at=at)
    spend(db, 53, "theirs", at="2026-11-26 10:00", user=USER + 1)  # another user's spending
    with db.transaction() as conn:  # taken back, given back and adjusted on Thursday: never spending
        for type_, amount in (("refund", -333), ("refund_reversal", 333), ("adjustment", -7)):
            ledger.post(conn, user_id=USER, type=type_, amount=amount, reference=f"re_{type_}",  # type: ignore[arg-type]
                        created_at="2026-11-26T10:00:00.000Z")
    settings = controls(db, timeZone=time_zone, **{"caps.day": 97, "caps.month": 1013})
    with db.read() as conn:
        use = spend_controls.current_use(conn, USER, settings, utc(now))
    assert [u.period for u in use] == ["day", "week", "month"]
    assert {u.period: u.as_json() for u in use} == expected


def test_a_new_user_has_spent_nothing_in_any_period(db: Database) -> None:
    with db.read() as conn:
        use = spend_controls.current_use(conn, USER, spend_controls.load(conn, USER), utc("2026-11-26 12:00"))
    assert {u.period: u.as_json() for u in use} == {
        "day": period(None, 0, "2026-11-26T00:00:00.000Z", "2026-11-27T00:00:00.000Z"),
        "week": period(None, 0, "2026-11-23T00:00:00.000Z", "2026-11-30T00:00:00.000Z"),
        "month": period(None, 0, "2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z"),
    }
