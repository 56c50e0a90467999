"""Each alert becomes a desktop notification once per device and account, across restarts; switched-off
kinds never notify; the file survives corruption."""

from __future__ import annotations

from pathlib import Path

from desktop.core.alert_inbox import AlertInbox, label, notices, title, told_by_a_panel, told_by_a_refusal
from desktop.core.spend_models import Alert


def alert(n: int, kind: str = "low_balance") -> Alert:
    return Alert(n, kind, "2026-11-26T12:00:00.000Z", None, f"message {n}")


def test_each_alert_is_new_once_even_after_a_restart(tmp_path: Path) -> None:
    inbox = AlertInbox(tmp_path / "alerts.json")
    assert [a.id for a in inbox.take_new("me", [alert(2), alert(1)])] == [2, 1]
    assert inbox.take_new("me", [alert(3), alert(2), alert(1)]) == [alert(3)]
    again = AlertInbox(tmp_path / "alerts.json")  # the app started again
    assert again.take_new("me", [alert(3), alert(2), alert(1)]) == []
    assert again.take_new("someone else", [alert(1)]) == [alert(1)]


def test_switched_off_kinds_are_noted_but_never_shown(tmp_path: Path) -> None:
    inbox = AlertInbox(tmp_path / "alerts.json")
    assert inbox.set_muted(["purchase_confirmed", "test", "no_such_kind"]) == frozenset({"purchase_confirmed"})
    shown = inbox.take_new("me", [alert(1, "purchase_confirmed"), alert(2, "test"), alert(3, "cap_80")])
    assert [a.id for a in shown] == [3, 2]  # the test notification always shows
    inbox.set_muted([])
    assert inbox.take_new("me", [alert(1, "purchase_confirmed")]) == []  # no old ones when switched back on
    assert AlertInbox(tmp_path / "alerts.json").muted() == frozenset()


def test_a_corrupt_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    path.write_text("{not json", encoding="utf-8")
    inbox = AlertInbox(path)
    assert inbox.take_new("me", [alert(1)]) == [alert(1)]
    assert (tmp_path / "alerts.json.corrupt").read_text(encoding="utf-8") == "{not json"


def test_many_new_alerts_make_one_summary() -> None:
    few = notices([alert(2), alert(1)])
    assert [(n.title, n.message) for n in few] == [("Low balance", "message 1"), ("Low balance", "message 2")]
    (summary,) = notices([alert(n) for n in range(9, 0, -1)])
    assert summary.title == "9 new Creditdesk alerts" and summary.message == "Latest: message 9"
    assert label("cap_100") == "Spend cap" and label("brand_new_kind") == "Brand new kind"


def test_a_purchase_its_panel_told_is_not_announced_again() -> None:
    def about(n: int, kind: str, session: str) -> Alert:
        return Alert(n, kind, "2026-11-26T12:00:00.000Z", None, f"message {n}", {"sessionId": session})

    new = [about(5, "purchase_confirmed", "cs_here"), about(4, "purchase_confirmed", "cs_elsewhere"),
           about(3, "purchase_failed", "cs_here_too"), about(2, "low_balance", "cs_here"), alert(1, "clawback")]
    announce, told = told_by_a_panel(new, iter(["cs_here", "cs_here_too"]))
    assert [a.id for a in told] == [5, 3]  # the panels said it
    assert [a.id for a in announce] == [4, 2, 1]  # paid in another app, and what no panel is about
    assert told_by_a_panel(new, []) == (new, [])


def cap_alert(n: int, used: int, cap: int = 100, period: str = "day") -> Alert:
    return Alert(n, "cap_100", "2026-11-26T12:00:00.000Z", None, f"message {n}",
                 {"period": period, "cap": cap, "used": used, "resetsAt": "2026-11-27T00:00:00Z"})


def test_a_cap_alert_is_headed_with_what_happened() -> None:
    """The backend makes cap_100 both when a spend reaches the cap and when one is refused for going over it."""
    assert title(cap_alert(1, used=25)) == "Spend refused: daily cap"  # 25 of 100 used: the cap is not reached
    assert title(cap_alert(2, used=100, period="week")) == "Spend cap reached"
    assert title(cap_alert(3, used=5, period="")) == "Spend refused: cap"
    assert title(alert(4, "cap_80")) == label("cap_80") == "Spend cap at 80 %"
    assert [n.title for n in notices([cap_alert(5, used=25)])] == ["Spend refused: daily cap"]


def test_a_refusal_the_use_credits_dialog_shows_is_not_announced_again() -> None:
    new = [cap_alert(3, used=25), cap_alert(2, used=90, period="month"), alert(1, "cap_80")]
    announce, told = told_by_a_refusal(new, ["day"])
    assert [a.id for a in told] == [3] and [a.id for a in announce] == [2, 1]
    assert told_by_a_refusal(new, []) == (new, [])
