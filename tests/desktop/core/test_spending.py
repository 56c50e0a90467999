"""Spending from the Qt-free client: the spend-with-confirmation call for host applications, what a refusal
means for the user, and the spend controls, alerts, usage and CSV calls against the real backend."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest
import requests

from desktop.core.api import ApiClient, ApiError, CancelledDownload, SpendDeclined, new_idempotency_key
from desktop.core.spend_models import ConfirmationRequest
from desktop.core.spending import Fix, parse_thresholds, refusal_for


def buy(client: ApiClient, pack: str = "standard") -> None:
    session = client.checkout(pack)
    requests.post(session.url + "/pay", timeout=10)


# -- refusals, in words -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "control", "fix", "words"), [
    (ApiError(402, "insufficient_credits", "This needs 30 credits and the balance is 7."), "balance", Fix.BUY,
     "This needs 30 credits and the balance is 7. Buy credits to go on."),
    (ApiError(403, "spend_cap_reached", "…", details={"period": "week", "cap": 1000, "used": 990,
                                                        "resetsAt": "2026-11-29T23:00:00.000Z"}),
     "cap", Fix.RAISE_CAP, "This would go over your weekly cap: 990 of 1,000 credits are already spent this "
                           "week, 10 left. It resets on Mon 30 Nov 2026 00:00 CET. Raise the cap or wait until then."),
    (ApiError(428, "confirmation_required", "…", details={"confirmationToken": "cfm_x", "amount": 2500,
                                                            "balanceAfter": 120}),
     "confirmation", Fix.CONFIRM, "Spend 2,500 credits? Your balance will then be 120 credits."),
    (ApiError(428, "confirmation_required", "Please confirm.", details={}), "confirmation", Fix.NONE,
     "Please confirm."),
])
def test_a_refusal_names_its_control_and_its_fix(error: ApiError, control: str, fix: Fix, words: str) -> None:
    refusal = refusal_for(error, "Europe/Paris")
    assert refusal is not None and (refusal.control, refusal.fix) == (control, fix)
    assert refusal.message.startswith(words)


@pytest.mark.parametrize(("used", "title"), [(990, "Over your weekly cap"), (1000, "Weekly cap reached"),
                                             (1013, "Weekly cap reached")])
def test_a_cap_refusal_says_whether_the_cap_is_reached_or_would_be_passed(used: int, title: str) -> None:
    error = ApiError(403, "spend_cap_reached", "…", details={"period": "week", "cap": 1000, "used": used,
                                                             "resetsAt": "2026-11-29T23:00:00.000Z"})
    refusal = refusal_for(error, "Europe/Paris")
    assert refusal is not None and refusal.title == title


def test_a_confirmation_names_the_users_threshold() -> None:
    error = ApiError(428, "confirmation_required", "…", details={"confirmationToken": "cfm_x", "amount": 2500,
                                                                 "balanceAfter": 120})
    refusal = refusal_for(error, "Europe/Paris", confirm_above=1250)
    assert refusal is not None and refusal.message.endswith("You asked to confirm spends above 1,250 credits.")
    unknown = refusal_for(error, "Europe/Paris")
    assert unknown is not None and unknown.message.endswith("You asked to confirm spends above your threshold.")


def test_other_errors_are_no_refusal() -> None:
    assert refusal_for(ApiError(409, "idempotency_key_reused", "…")) is None
    assert refusal_for(RuntimeError("boom")) is None


@pytest.mark.parametrize(("text", "levels"), [
    ("", []), ("500, 100", [500, 100]), ("100;500 , 100", [500, 100]), (" 0 ", [0]), ("1\u202f000", [1000]),
])
def test_alert_levels_are_read_from_text(text: str, levels: list[int]) -> None:
    assert parse_thresholds(text) == levels


@pytest.mark.parametrize(("text", "why"), [
    ("ten", "not a whole number"), ("-5", "not a whole number"), ("2.5", "not a whole number"),
    ("1,000", "without thousands separators"), (", ".join(str(n) for n in range(11)), "At most 10"),
])
def test_bad_alert_levels_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_thresholds(text)


# -- the one call for host applications ----------------------------------------------------------------------------


def test_spend_with_confirmation_asks_once_and_spends_once(client: ApiClient) -> None:
    buy(client)
    client.update_spend_controls({"confirmAbove": 100})
    asked: list[ConfirmationRequest] = []

    def confirm(request: ConfirmationRequest) -> bool:
        asked.append(request)
        return True

    small = client.spend_with_confirmation(100, "At the threshold", confirm=confirm)
    assert small.balance == 450 and asked == []
    big = client.spend_with_confirmation(250, "Render the film", confirm=confirm, feature="render")
    assert big.balance == 200
    assert [(r.amount, r.balance_after) for r in asked] == [(250, 200)]
    assert "cfm_" not in repr(asked[0])  # the token stays out of logs and reprs
    assert client.balance() == 200


def test_saying_no_spends_nothing(client: ApiClient) -> None:
    buy(client)
    client.update_spend_controls({"confirmAbove": 0})
    with pytest.raises(SpendDeclined) as declined:
        client.spend_with_confirmation(5, "Maybe", confirm=lambda request: False)
    assert declined.value.request.amount == 5 and "not confirmed" in str(declined.value)
    assert client.balance() == 550


def test_other_refusals_come_as_api_errors_with_their_details(client: ApiClient) -> None:
    buy(client)
    client.update_spend_controls({"caps": {"day": 10}})
    with pytest.raises(ApiError) as caught:
        client.spend_with_confirmation(11, "Too much today", confirm=lambda request: True)
    assert caught.value.status == 403 and caught.value.code == "spend_cap_reached"
    assert caught.value.details is not None and caught.value.details["cap"] == 10
    refusal = refusal_for(caught.value, "UTC")
    assert refusal is not None and refusal.fix is Fix.RAISE_CAP


def test_a_retried_confirmed_spend_is_made_once(client: ApiClient) -> None:
    buy(client)
    client.update_spend_controls({"confirmAbove": 1})
    key = new_idempotency_key()
    first = client.spend_with_confirmation(50, "Once", confirm=lambda r: True, idempotency_key=key)
    again = client.spend_with_confirmation(50, "Once", confirm=lambda r: pytest.fail("asked again"),
                                           idempotency_key=key)
    assert again == first and client.balance() == 500


# -- controls, alerts, usage, CSV -----------------------------------------------------------------------------------


def test_controls_alerts_and_usage_calls(client: ApiClient) -> None:
    controls = client.spend_controls()
    assert controls.time_zone == "UTC" and controls.caps == {"day": None, "week": None, "month": None}
    changed = client.update_spend_controls({"timeZone": "Asia/Tokyo", "caps": {"month": 900},
                                            "lowBalanceAlerts": [300]})
    assert changed.caps["month"] == 900 and changed.low_balance_alerts == (300,)
    assert changed.periods["month"].cap == 900 and changed.periods["day"].used == 0
    assert [c.field for c in changed.history] == ["lowBalanceAlerts", "caps.month", "timeZone"]

    buy(client)
    client.spend(260, new_idempotency_key(), "Below the alert level")
    page = client.alerts(unread=True)
    assert [a.kind for a in page.items] == ["low_balance", "purchase_confirmed"] and page.unread == 2
    test = client.send_test_alert()
    assert test.kind == "test" and test.unread
    assert client.mark_alerts_read([page.items[0].id]) == 2
    assert client.mark_alerts_read() == 0

    usage = client.usage("week")
    assert usage.time_zone == "Asia/Tokyo" and len(usage.buckets) == 12
    assert usage.totals["spent"] == 260 and usage.totals["closingBalance"] == 290
    assert usage.by_description == (("Below the alert level", 260, False),)
    assert usage.forecast.days_left is None and usage.forecast.active_days == 1


def test_the_csv_download_is_whole_or_absent(client: ApiClient, tmp_path: Path) -> None:
    buy(client)
    client.spend(7, new_idempotency_key(), "Café, \"quoted\"")
    target = tmp_path / "ledger.csv"
    seen: list[int] = []
    size = client.download_transactions_csv(target, date(2000, 1, 1), date(2999, 12, 31), progress=seen.append)
    assert size == target.stat().st_size and seen[-1] == size
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"), newline="")))
    assert [(r["type"], r["amount"], r["description"]) for r in rows] == [
        ("purchase", "550", "Standard pack"), ("spend", "-7", "Café, \"quoted\"")]

    other = tmp_path / "cancelled.csv"
    with pytest.raises(CancelledDownload):
        client.download_transactions_csv(other, cancelled=lambda: True)
    assert list(tmp_path.iterdir()) == [target]  # no partial file left behind


def test_a_bad_range_is_a_clear_error(client: ApiClient, tmp_path: Path) -> None:
    with pytest.raises(ApiError) as caught:
        client.usage("day", date(2026, 12, 2), date(2026, 12, 1))
    assert caught.value.status == 422 and "after" in caught.value.message
    with pytest.raises(ApiError):
        client.download_transactions_csv(tmp_path / "x.csv", date(2026, 12, 2), date(2026, 12, 1))
    assert list(tmp_path.iterdir()) == []


def test_errors_without_details_have_none(client: ApiClient) -> None:
    buy(client, "starter")
    with pytest.raises(ApiError) as caught:
        client.spend(101, new_idempotency_key())
    assert caught.value.details is None and caught.value.code == "insufficient_credits"
