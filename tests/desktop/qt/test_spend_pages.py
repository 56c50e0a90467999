"""The Credits menu's pages in the real window against the real backend, offscreen: "Use credits…" with its
refusals and the confirm flow, the spend controls, alerts as notifications exactly once (also across a restart
of the app in its default mode, the bundled backend), and the usage dashboard with its CSV export."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QScrollArea

from desktop.core.spend_models import Alert, AlertPage
from desktop.qt import spend_controller
from desktop.qt.main_window import MainWindow
from tests.desktop.qt.conftest import PASSWORD, sign_up
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess


def api_for(window: MainWindow) -> Api:
    return Api(window.controller.backend.url or "", window.controller.backend.api.token)  # type: ignore[union-attr]


def buy(api: Api, pack: str = "standard") -> None:
    requests.post(api.checkout(pack)["url"] + "/pay", timeout=10)


def sign_in(qtbot: Any, window: MainWindow, email: str) -> None:
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=30_000)
    window.sign_in.email.setText(email)
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.sign_in_button.click()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.account, timeout=10_000)


def signed_in_again(qtbot: Any, window: MainWindow, email: str) -> None:
    """A restart in the default mode: the sign-in kept in the keyring is restored, no password asked."""
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.account, timeout=30_000)
    assert window.controller.session.email == email


def notices(window: MainWindow) -> list[tuple[str, str]]:
    return [(n.title, n.message) for n in window.spend_ui.notifier.shown]


# -- Use credits… ----------------------------------------------------------------------------------------------


def test_use_credits_spends_and_each_refusal_offers_its_fix(qtbot: Any, make_window: Any,
                                                            stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url)
    sign_up(qtbot, window)
    api = api_for(window)
    buy(api, "starter")
    api.request("PUT", "/api/credits/controls", json={"caps": {"day": 60}, "timeZone": "Europe/Paris"})
    assert window.spend_ui.use_action.isEnabled() and window.spend_ui.use_action.shortcut().toString() == "Ctrl+U"
    dialog = window.spend_ui.show_spend()
    dialog.amount.setValue(40)
    dialog.description.setText("Export a report")
    dialog.spend_button.click()
    qtbot.waitUntil(lambda: dialog.status.text() == "Spent 40 credits. Your balance is 60 credits.")
    qtbot.waitUntil(lambda: window.account.balance.text() == "60 credits")
    assert dialog.balance.text() == "60 credits"  # the dialog shows the balance it spends from

    dialog.amount.setValue(21)  # over the daily cap of 60
    dialog.spend_button.click()
    qtbot.waitUntil(lambda: dialog.refusal_box.isVisible())
    assert dialog.refusal_title.text() == "Over your daily cap"  # 40 of 60: not reached, but 21 would pass it
    assert dialog.refusal_text.text().startswith("This would go over your daily cap: 40 of 60 credits are already "
                                                 "spent today, 20 left. It resets on ")
    # In the user's zone (Paris: CET or CEST, whatever the season), not this computer's.
    qtbot.waitUntil(lambda: " CET." in dialog.refusal_text.text() or " CEST." in dialog.refusal_text.text())
    assert dialog.fix_button.text() == "Change spend &controls…"
    dialog.fix_button.click()
    controls = window.spend_ui.controls_window
    assert controls is not None and controls.isVisible()

    api.request("PUT", "/api/credits/controls", json={"caps": None})
    dialog.amount.setValue(61)  # more than the balance
    dialog.spend_button.click()
    qtbot.waitUntil(lambda: dialog.refusal_title.text() == "Not enough credits")
    assert dialog.fix_button.text() == "&Buy credits…"
    dialog.fix_button.click()
    assert window.account.cards[0].button.hasFocus() or window.focusWidget() is window.account.cards[0].button
    assert not dialog.isVisible()  # out of the packs' way, as it was when it comes back
    assert window.spend_ui.show_spend() is dialog and dialog.amount.value() == 61
    assert api.balance() == 60


def test_a_spend_refused_for_a_cap_is_told_once_by_the_dialog(qtbot: Any, make_window: Any,
                                                              stub_backend: BackendProcess) -> None:
    """From the walkthrough of issue 18: the dialog's refusal and a "Cap reached" notification at once, the title
    wrong too (25 of 100 used: the spend would go over; the cap was not reached)."""
    window = make_window(stub_backend.url)
    sign_up(qtbot, window)
    api = api_for(window)
    buy(api)  # 550 credits: the balance is no refusal's reason
    api.request("PUT", "/api/credits/controls", json={"caps": {"day": 100}})
    api.post("/api/credits/spend", json={"amount": 25, "idempotencyKey": "first"})
    ui = window.spend_ui
    dialog = ui.show_spend()
    dialog.amount.setValue(80)
    dialog.spend_button.click()
    qtbot.waitUntil(lambda: dialog.refusal_title.text() == "Over your daily cap")
    assert dialog.refused_cap == "day"
    # The backend made its cap_100 alert with the refusal: read and marked read, never a notification.
    qtbot.waitUntil(lambda: api.get("/api/alerts").json()["alerts"][0]["kind"] == "cap_100")
    ui.spending.poll_alerts()
    qtbot.waitUntil(lambda: [a["kind"] for a in api.get("/api/alerts", params={"unread": "true"}).json()["alerts"]]
                    == ["purchase_confirmed"], timeout=10_000)  # (bought outside the app: that one is news)
    qtbot.waitUntil(lambda: not window.controller.workers.runner.busy)
    assert [n for n in notices(window) if "cap" in n[0].lower()] == []
    assert not ui.notifier.toast.isVisible() or "cap" not in ui.notifier.toast.title.text().lower()

    # With the dialog closed, the next refusal (the weekly cap's) is news: a notification that says what happened.
    dialog.close()
    api.request("PUT", "/api/credits/controls", json={"caps": {"day": None, "week": 50}})
    assert api.post("/api/credits/spend", json={"amount": 30, "idempotencyKey": "second"}).status_code == 403
    qtbot.waitUntil(lambda: any(n[0] == "Spend refused: weekly cap" for n in notices(window)), timeout=20_000)


def test_a_spend_above_the_threshold_is_confirmed_once(qtbot: Any, make_window: Any,
                                                       stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url)
    sign_up(qtbot, window)
    api = api_for(window)
    buy(api)
    api.request("PUT", "/api/credits/controls", json={"confirmAbove": 100})
    dialog = window.spend_ui.show_spend()
    dialog.amount.setValue(250)
    dialog.description.setText("Render the film")
    dialog.spend_button.click()
    qtbot.waitUntil(lambda: dialog.refusal_title.text() == "Confirm this spend")
    assert dialog.refusal_text.text().startswith("Spend 250 credits? Your balance will then be 300 credits.")
    assert api.balance() == 550  # asking spent nothing
    dialog.fix_button.click()
    qtbot.waitUntil(lambda: dialog.status.text() == "Spent 250 credits. Your balance is 300 credits.")
    assert not dialog.refusal_box.isVisible()
    assert [t["amount"] for t in api.transactions()] == [-250, 550]

    dialog.amount.setValue(150)
    dialog.spend_button.click()
    qtbot.waitUntil(lambda: dialog.refusal_title.text() == "Confirm this spend")
    dialog.amount.setValue(151)  # a confirmation is for the spend as it was asked
    assert not dialog.refusal_box.isVisible()
    assert api.balance() == 300


# -- Spend controls ----------------------------------------------------------------------------------------------


def test_the_controls_page_shows_saves_and_keeps_the_history(qtbot: Any, make_window: Any,
                                                             stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url)
    sign_up(qtbot, window)
    api = api_for(window)
    page = window.spend_ui.show_controls()
    qtbot.waitUntil(lambda: page.controls is not None)
    qtbot.waitUntil(lambda: page.time_zone.count() > 300)  # the zones, read off the GUI thread
    assert page.caps["day"].use.text().startswith("0 spent today · resets ")

    page.time_zone.setCurrentText("America/New_York")
    page.caps["day"].enabled.setChecked(True)
    page.caps["day"].amount.setValue(100)
    page.confirm_enabled.setChecked(True)
    page.confirm_above.setValue(25)
    page.thresholds.setText("50, 500")
    page.save_button.click()
    qtbot.waitUntil(lambda: page.status.text().startswith("Saved at "))  # when it was true
    assert page.status.text().endswith(". The new controls apply to the next spend.")
    body = api.get("/api/credits/controls").json()
    assert body["timeZone"] == "America/New_York" and body["caps"]["day"] == 100
    assert body["confirmAbove"] == 25 and body["lowBalanceAlerts"] == [500, 50]
    assert page.history.rowCount() == 4
    assert {page.history.item(r, 1).text() for r in range(4)} == {
        "Time zone", "Daily cap", "Confirm above", "Low-balance alerts"}
    assert page.history.item(0, 0).text().endswith((" EST", " EDT"))  # when, in the user's zone
    assert page.caps["day"].use.text().startswith("0 of 100 spent today · resets ")

    page.thresholds.setText("1,000")
    page.save_button.click()
    assert "without thousands separators" in page.status.text()
    page.thresholds.setText("500, 50")
    page.time_zone.setCurrentText("Mars/Olympus_Mons")
    page.save_button.click()
    assert page.status.text().startswith("'Mars/Olympus_Mons' is not a time zone")
    page.revert_button.click()
    assert page.time_zone.currentText() == "America/New_York"
    page.save_button.click()
    assert page.status.text() == "Nothing to save: the controls are as shown."
    assert len(api.get("/api/credits/controls").json()["history"]) == 4
    page.close()
    assert window.spend_ui.show_controls() is page and page.status.text() == ""  # said on the last visit: gone


def test_the_computers_time_zone_is_taken_once_at_the_first_sign_in(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spend_controller, "system_time_zone", lambda: "Pacific/Auckland")
    window = make_window(stub_backend.url)
    email = sign_up(qtbot, window)
    api = Api(stub_backend.url)  # a session of its own: signing out in the app revokes the app's
    r = api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    api.token = r.json()["token"]
    qtbot.waitUntil(lambda: api.get("/api/credits/controls").json()["timeZone"] == "Pacific/Auckland")
    api.request("PUT", "/api/credits/controls", json={"timeZone": "UTC"})  # the user chose UTC themselves
    window.sign_out_action.trigger()
    sign_in(qtbot, window, email)
    qtbot.waitUntil(lambda: window.spend_ui.spending.controls is not None)
    qtbot.waitUntil(lambda: not window.controller.workers.runner.busy)  # whatever the sign-in set off has answered
    assert api.get("/api/credits/controls").json()["timeZone"] == "UTC"


# -- Alerts --------------------------------------------------------------------------------------------------------


def test_alerts_notify_once_and_the_inbox_marks_them_read(qtbot: Any, make_window: Any,
                                                          stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url)
    sign_up(qtbot, window)
    ui = window.spend_ui
    api = api_for(window)
    buy(api)
    qtbot.waitUntil(lambda: ("Purchase confirmed", "Your purchase of the Standard pack went through: 550 credits "
                                                   "added.") in notices(window), timeout=10_000)
    assert ui.notifier.where == "window" and ui.notifier.toast.isVisible()  # no system tray offscreen
    qtbot.waitUntil(lambda: ui.alerts_button.text() == "1 new alert")
    for _ in range(3):  # each poll answered: the alert is not announced again
        with qtbot.waitSignal(ui.spending.alertsChanged, timeout=10_000):
            ui.spending.poll_alerts()
    assert len(notices(window)) == 1

    inbox = ui.show_alerts()
    qtbot.waitUntil(lambda: inbox.list.count() == 1)
    assert inbox.list.item(0).font().bold() and inbox.summary.text() == "1 unread"
    # Every kind can be switched off, expiring credits too, and the switches fit the window's width (the auto
    # top-up kinds' longer names in three columns needed a horizontal scroll bar).
    assert inbox.switches["credits_expiring"].text() == "Credits expiring"
    switches_box = inbox.switches["cap_80"].parentWidget()
    scroll = inbox.findChild(QScrollArea, "alertsScroll")
    assert switches_box.minimumSizeHint().width() <= scroll.viewport().width()
    inbox.switches["cap_80"].setChecked(False)
    qtbot.waitUntil(lambda: ui.spending.muted == frozenset({"cap_80"}))
    inbox.test_button.click()
    qtbot.waitUntil(lambda: ("Test notification",
                             "This is a test notification from Creditdesk. Alerts reach you like this.")
                    in notices(window))
    api.request("PUT", "/api/credits/controls", json={"caps": {"day": 100}})
    api.post("/api/credits/spend", json={"amount": 85, "idempotencyKey": "k1"})  # cap 80 %: switched off
    ui.spending.poll_alerts()  # the next poll, now rather than at its interval
    qtbot.waitUntil(lambda: inbox.list.count() == 3, timeout=20_000)
    assert [n[0] for n in notices(window)] == ["Purchase confirmed", "Test notification"]
    inbox.mark_all_button.click()
    qtbot.waitUntil(lambda: ui.alerts_button.text() == "No new alerts")
    qtbot.waitUntil(lambda: not any(inbox.list.item(n).font().bold() for n in range(inbox.list.count())))
    assert api.get("/api/alerts", params={"unread": "true"}).json()["alerts"] == []

    # Credits expiring at the end of today, 24:00 UTC (adjust --expires TODAY), shaped as the backend sends them:
    # the inbox and the notification say the end of today in the user's zone (here UTC), not tomorrow's date.
    today = datetime.now(UTC).date()
    expiring = Alert.from_json({
        "id": 999, "kind": "credits_expiring", "createdAt": "2026-12-12T00:00:00.000Z", "readAt": None,
        "message": f"9 credits (Welcome bonus) expire at the end of {today.isoformat()} (24:00 UTC)",
        "data": {"grantId": 4, "credits": 9, "kind": "promotional",
                 "expiresAt": f"{(today + timedelta(days=1)).isoformat()}T00:00:00.000Z",
                 "description": "Welcome bonus", "leadSeconds": 86400, "lead": "1 day"}})
    assert ui.spending.controls is not None and ui.spending.controls.time_zone in ("UTC", "Etc/UTC")
    words = f"9 credits (Welcome bonus) expire at the end of {today.day} {today.strftime('%b')}"
    inbox._loaded(AlertPage((expiring,), None, 1))
    assert inbox.list.item(0).text().endswith(f"\n{words}")
    ui._notify([expiring])
    assert notices(window)[-1] == ("Credits expiring", words)


@pytest.mark.subprocess
def test_alerts_reach_the_user_once_across_restarts_of_the_app(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    """The default mode: the bundled backend (its identity, and the sign-in kept, across restarts)."""
    first = make_window(None)
    email = sign_up(qtbot, first)
    api = api_for(first)
    buy(api)
    qtbot.waitUntil(lambda: [n[0] for n in notices(first)] == ["Purchase confirmed"], timeout=10_000)
    first.close()
    first.controller.shutdown()

    # While the app is closed: the same database served by a backend of its own makes a new alert.
    with BackendProcess(tmp_path / "home" / "data") as offline:
        closed = Api(offline.url, api.token)
        closed.request("PUT", "/api/credits/controls", json={"lowBalanceAlerts": [500]})
        assert closed.post("/api/credits/spend", json={"amount": 100, "idempotencyKey": "away"}).status_code == 200

    second = make_window(None)
    signed_in_again(qtbot, second, email)
    qtbot.waitUntil(lambda: notices(second) == [
        ("Low balance", "Your balance is 450 credits, below your alert level of 500 credits.")], timeout=10_000)
    with qtbot.waitSignal(second.spend_ui.spending.alertsChanged, timeout=10_000):
        second.spend_ui.spending.poll_alerts()
    assert len(notices(second)) == 1
    second.close()
    second.controller.shutdown()

    third = make_window(None)
    signed_in_again(qtbot, third, email)
    # The unread count is shown by the same answer that would have announced any alert new to this device.
    qtbot.waitUntil(lambda: third.spend_ui.alerts_button.text() == "2 new alerts", timeout=10_000)
    assert notices(third) == []  # both were shown before; the inbox still has them, unread


# -- Usage ---------------------------------------------------------------------------------------------------------


def test_the_usage_dashboard_and_its_csv_export(qtbot: Any, make_window: Any, stub_backend: BackendProcess,
                                                tmp_path: Path) -> None:
    window = make_window(stub_backend.url)
    sign_up(qtbot, window)
    api = api_for(window)
    buy(api)
    for n, (amount, description, feature) in enumerate([(30, "Export a report", None), (12, "Café", "ocr")]):
        body = {"amount": amount, "idempotencyKey": f"k{n}", "description": description}
        api.post("/api/credits/spend", json=body | ({"feature": feature} if feature else {}))
    target = tmp_path / "out" / "ledger.csv"
    target.parent.mkdir()
    suggestions: list[str] = []
    window.spend_ui.choose_path = lambda parent, suggested: suggestions.append(suggested) or str(target)
    page = window.spend_ui.show_usage()
    qtbot.waitUntil(lambda: page.usage is not None)
    assert len(page.usage.buckets) == 30
    series = page.chart.series()[0]
    assert [s.label() for s in series.barSets()] == ["Spent", "Bought"]
    assert series.barSets()[0].at(29) == 42 and series.barSets()[1].at(29) == 550
    assert page.totals.text() == "Spent 42, bought 550 credits; balance 0 → 508 (+508)."
    assert page.forecast.text().startswith("Not enough data yet for a forecast")
    assert [page.breakdown.item(r, 0).text() for r in range(page.breakdown.rowCount())] == ["Export a report", "ocr"]

    page.granularity.setCurrentIndex(2)  # months
    qtbot.waitUntil(lambda: page.usage is not None and page.usage.granularity == "month")
    assert len(page.usage.buckets) == 12
    page.export_button.click()
    qtbot.waitUntil(lambda: page.status.text().startswith("Saved ledger.csv"), timeout=10_000)
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"), newline="")))
    assert [(r["type"], int(r["amount"])) for r in rows] == [("purchase", 550), ("spend", -30), ("spend", -12)]
    assert int(rows[-1]["balanceAfter"]) == api.balance() == 508
    assert Path(suggestions[0]).parent == Path.home()
    page.export_button.click()  # the next export is suggested where the last one went
    qtbot.waitUntil(lambda: len(suggestions) == 2 and page.status.text().startswith("Saved ledger.csv"),
                    timeout=10_000)
    assert Path(suggestions[1]).parent == target.parent


def test_the_credits_menu_is_for_signed_in_users(qtbot: Any, make_window: Any, stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=10_000)
    ui = window.spend_ui
    assert [a.text() for a in window.menuBar().actions()] == ["&File", "&Buy", "&Credits", "&Help"]
    assert not any(a.isEnabled() for a in ui.menu.actions()) and not ui.alerts_button.isVisible()
    sign_up(qtbot, window)
    assert all(a.isEnabled() for a in ui.menu.actions()) and ui.alerts_button.isVisible()
    ui.show_usage()
    window.sign_out_action.trigger()
    assert ui.usage_window is not None and not ui.usage_window.isVisible()
    assert not ui.use_action.isEnabled()


def test_enter_spends_and_use_credits_opened_again_starts_a_new_spend(qtbot: Any, make_window: Any,
                                                                      stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url)
    sign_up(qtbot, window)
    api = api_for(window)
    buy(api, "starter")
    dialog = window.spend_ui.show_spend()
    dialog.amount.setValue(7)
    dialog.description.setText("Export a report")
    dialog.description.setFocus()
    qtbot.keyClick(dialog.description, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.status.text() == "Spent 7 credits. Your balance is 93 credits.")
    dialog.close()

    assert window.spend_ui.show_spend() is dialog
    assert dialog.description.text() == "" and dialog.status.text() == ""  # not the last spend, ready to repeat
    assert dialog.focusWidget() in (dialog.amount, dialog.amount.lineEdit())
    assert api.balance() == 93


def test_use_credits_refuses_an_empty_description_where_the_host_requires_one(
    qtbot: Any, make_window: Any, backend_factory: Any,
) -> None:
    backend = backend_factory({"CREDITDESK_REQUIRE_DESCRIPTION": "1"})
    window = make_window(backend.url)
    sign_up(qtbot, window)
    api = api_for(window)
    buy(api, "starter")
    dialog = window.spend_ui.show_spend()
    dialog.amount.setValue(7)
    dialog.spend_button.click()  # the server says it wants a description
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Say what these credits are for"))
    assert dialog.description_required and dialog.focusWidget() is dialog.description
    dialog.description.setText("   ")
    dialog.spend_button.click()  # now refused here, before anything is sent
    assert not dialog.sending and dialog.status.text().startswith("Say what these credits are for")
    dialog.description.setText("Render the trailer")
    dialog.spend_button.click()
    qtbot.waitUntil(lambda: dialog.status.text() == "Spent 7 credits. Your balance is 93 credits.")
    assert api.get("/api/credits/balance").json()["balance"] == 93  # spent once


def test_auto_topup_shows_only_the_newest_call_s_answer_or_failure(qtbot: Any, make_window: Any,
                                                                    stub_backend: BackendProcess) -> None:
    """A read sent before Turn off that answers (or fails) after it says nothing: the dialog keeps Turn off's answer
    (a late read showed auto top-up on again)."""
    window = make_window(stub_backend.url)
    spending = window.spend_ui.spending
    changed: list[object] = []
    failed: list[str] = []
    spending.autoTopupChanged.connect(changed.append)
    spending.autoTopupFailed.connect(failed.append)
    for late in ("the read's answer", OSError("the read failed")):
        released = threading.Event()

        def slow_read(late: object = late, released: threading.Event = released) -> object:
            released.wait(10)
            if isinstance(late, Exception):
                raise late
            return late

        spending._auto_topup_call(slow_read)
        spending._auto_topup_call(lambda: "turned off")
        qtbot.waitUntil(lambda: changed[-1:] == ["turned off"], timeout=10_000)
        released.set()
        window.controller.workers.wait_for_done(10_000)  # the late one's answer is queued before the next's
        spending._auto_topup_call(lambda: "read again")
        qtbot.waitUntil(lambda: changed[-1:] == ["read again"], timeout=10_000)
    assert changed == ["turned off", "read again"] * 2 and failed == []
