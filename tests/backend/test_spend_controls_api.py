"""Spend controls, alerts, usage and the CSV through the HTTP API of the real backend (the contract's section
"Spend controls, alerts, usage")."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import pytest
import requests

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.concurrency import all_at_once
from tests.helpers.stripe_server import FakeStripe


def buy(api: Api, pack: str = "starter") -> str:
    checkout = api.checkout(pack)
    requests.post(checkout["url"] + "/pay", timeout=10)
    return checkout["sessionId"]


def spend(api: Api, amount: int, key: str, **extra: Any) -> requests.Response:
    return api.post("/api/credits/spend", json={"amount": amount, "idempotencyKey": key, **extra})


def put(api: Api, body: dict[str, Any]) -> requests.Response:
    return api.request("PUT", "/api/credits/controls", json=body)


def alerts(api: Api, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/api/alerts", params=params)
    assert r.status_code == 200, r.text
    return r.json()["alerts"]


# -- controls ---------------------------------------------------------------------------------------------


def test_controls_start_empty_change_field_by_field_and_keep_their_history(stub_api: Api) -> None:
    r = stub_api.get("/api/credits/controls")
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("timeZone", "caps", "confirmAbove", "lowBalanceAlerts", "history")} == {
        "timeZone": "UTC", "caps": {"day": None, "week": None, "month": None}, "confirmAbove": None,
        "lowBalanceAlerts": [], "history": []}
    assert set(body["periods"]) == {"day", "week", "month"} and body["periods"]["day"]["used"] == 0

    r = put(stub_api, {"timeZone": "Europe/Paris", "caps": {"day": 100}, "lowBalanceAlerts": [20, 200]})
    assert r.status_code == 200, r.text
    r = put(stub_api, {"caps": {"week": 500}, "confirmAbove": 50})  # the daily cap stays
    body = r.json()
    assert body["caps"] == {"day": 100, "week": 500, "month": None} and body["confirmAbove"] == 50
    assert body["lowBalanceAlerts"] == [200, 20] and body["timeZone"] == "Europe/Paris"
    assert body["periods"]["day"]["cap"] == 100 and body["periods"]["week"]["resetsAt"].endswith(":00:00.000Z")
    r = put(stub_api, {"caps": None, "confirmAbove": None, "timeZone": None})  # null clears
    body = r.json()
    assert body["caps"] == {"day": None, "week": None, "month": None} and body["confirmAbove"] is None
    assert body["timeZone"] == "UTC" and body["lowBalanceAlerts"] == [200, 20]
    history = [(h["field"], h["old"], h["new"]) for h in body["history"]]
    assert history == [
        ("confirmAbove", 50, None), ("caps.week", 500, None), ("caps.day", 100, None),
        ("timeZone", "Europe/Paris", "UTC"),
        ("confirmAbove", None, 50), ("caps.week", None, 500),
        ("lowBalanceAlerts", [], [200, 20]), ("caps.day", None, 100), ("timeZone", "UTC", "Europe/Paris"),
    ]
    assert all(h["changedAt"].endswith("Z") for h in body["history"])


@pytest.mark.parametrize("body", [
    {"timeZone": "Mars/Olympus_Mons"}, {"timeZone": "localtime"}, {"timeZone": 3},
    {"caps": {"day": -1}}, {"caps": {"day": 10.5}}, {"caps": {"day": "10"}}, {"caps": {"day": True}},
    {"caps": {"year": 10}}, {"confirmAbove": -5}, {"lowBalanceAlerts": list(range(11))},
    {"lowBalanceAlerts": [10, -1]}, {"lowBalanceAlerts": 5}, {"unknown": 1},
])
def test_bad_controls_are_422_and_change_nothing(stub_api: Api, body: dict[str, Any]) -> None:
    put(stub_api, {"caps": {"day": 7}})
    r = put(stub_api, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_fields"
    after = stub_api.get("/api/credits/controls").json()
    assert after["caps"]["day"] == 7 and after["timeZone"] == "UTC" and len(after["history"]) == 1


def test_controls_need_a_sign_in(stub_backend: BackendProcess) -> None:
    anonymous = Api(stub_backend.url)
    for method, path in (("GET", "/api/credits/controls"), ("PUT", "/api/credits/controls"), ("GET", "/api/alerts"),
                         ("POST", "/api/alerts/read"), ("GET", "/api/credits/usage"),
                         ("GET", "/api/credits/transactions.csv")):
        r = anonymous.request(method, path, json={})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", path


# -- spending under the controls ------------------------------------------------------------------------------


def test_a_spend_over_a_cap_is_403_with_what_blocked_it(stub_api: Api) -> None:
    buy(stub_api, "standard")
    put(stub_api, {"caps": {"day": 100}})
    assert spend(stub_api, 60, "a").status_code == 200
    r = spend(stub_api, 41, "b")
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "spend_cap_reached"
    assert error["message"] == ("This spend of 41 credits would go over your daily cap: 60 of 100 credits are "
                                "already spent today. Raise the cap or wait until it resets.")
    details = error["details"]
    assert {k: details[k] for k in ("period", "cap", "used")} == {"period": "day", "cap": 100, "used": 60}
    assert details["resetsAt"] == stub_api.get("/api/credits/controls").json()["periods"]["day"]["resetsAt"]
    assert stub_api.balance() == 550 - 60


def test_the_confirmation_flow_over_http(stub_api: Api) -> None:
    buy(stub_api, "standard")
    put(stub_api, {"confirmAbove": 100})
    r = spend(stub_api, 250, "big", description="Render the film", feature="render")
    assert r.status_code == 428
    error = r.json()["error"]
    assert error["code"] == "confirmation_required" and "confirmation token" in error["message"]
    token = error["details"]["confirmationToken"]
    assert error["details"] == {"confirmationToken": token, "amount": 250, "balanceAfter": 300}
    done = spend(stub_api, 250, "big", description="Render the film", feature="render", confirmationToken=token)
    assert done.status_code == 200 and done.json()["balance"] == 300
    again = spend(stub_api, 250, "big", description="Render the film", feature="render", confirmationToken=token)
    assert again.json() == done.json()
    reused = spend(stub_api, 250, "big-2", confirmationToken=token)
    assert reused.status_code == 428 and reused.json()["error"]["details"]["confirmationToken"] != token
    assert spend(stub_api, 251, "big", description="Render the film", feature="render").status_code == 409
    assert stub_api.balance() == 300


def test_fifty_concurrent_http_spends_against_a_daily_cap(stub_backend: BackendProcess, stub_api: Api) -> None:
    buy(stub_api, "pro")
    put(stub_api, {"caps": {"day": 100}})
    clients = [Api(stub_backend.url, stub_api.token) for _ in range(50)]
    answers = all_at_once(50, lambda n: spend(clients[n], 10, f"race-{n}"))
    assert sorted(r.status_code for r in answers) == [200] * 10 + [403] * 40  # type: ignore[union-attr]
    assert stub_api.balance() == 1200 - 100
    assert [a["kind"] for a in alerts(stub_api)] == ["cap_100", "cap_80", "purchase_confirmed"]


# -- alerts ------------------------------------------------------------------------------------------------


def test_a_purchase_makes_one_alert_however_often_it_is_confirmed(stub_api: Api) -> None:
    session_id = buy(stub_api, "standard")
    for _ in range(3):
        assert stub_api.verify(session_id).json()["status"] == "paid"
    (alert,) = alerts(stub_api, unread="true")
    assert alert["kind"] == "purchase_confirmed" and alert["readAt"] is None
    assert alert["message"] == "Your purchase of the Standard pack went through: 550 credits added."
    assert alert["data"]["sessionId"] == session_id and alert["data"]["credits"] == 550
    assert alert["createdAt"].endswith("Z")


def test_the_inbox_marks_read_pages_and_sends_a_test(stub_backend: BackendProcess, stub_api: Api) -> None:
    made = []
    for _ in range(4):
        r = stub_api.post("/api/alerts/test")
        assert r.status_code == 201 and r.json()["kind"] == "test"
        made.append(r.json()["id"])
    page = stub_api.get("/api/alerts", params={"limit": 3}).json()
    assert [a["id"] for a in page["alerts"]] == made[::-1][:3] and page["unread"] == 4
    rest = stub_api.get("/api/alerts", params={"limit": 3, "before": page["nextCursor"]}).json()
    assert [a["id"] for a in rest["alerts"]] == made[:1] and rest["nextCursor"] is None

    stranger = Api(stub_backend.url).register()
    assert stranger.post("/api/alerts/read", json={"ids": made}).json() == {"unread": 0}
    assert alerts(stranger) == []
    assert stub_api.post("/api/alerts/read", json={"ids": made[:2]}).json() == {"unread": 2}
    assert [a["id"] for a in alerts(stub_api, unread="true")] == made[:1:-1]
    assert stub_api.post("/api/alerts/read", json={"all": True}).json() == {"unread": 0}
    assert alerts(stub_api, unread="true") == [] and len(alerts(stub_api)) == 4
    for bad in ({}, {"all": False}, {"ids": [1], "all": True}, {"ids": ["x"]}, {"ids": list(range(1, 1002))}):
        r = stub_api.post("/api/alerts/read", json=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_fields", bad


def test_purchase_outcomes_and_clawbacks_in_stripe_mode(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    paid = api.checkout("pro")["sessionId"]
    event = fake.pay(paid)
    assert fake.deliver(event, times=3, concurrency=3) == [200, 200, 200]
    api.verify(paid)
    failed = api.checkout("starter")["sessionId"]
    fake.pay_async(failed)
    fake.async_fail(failed)
    expired = api.checkout("starter")["sessionId"]
    fake.expire(expired)
    refund = fake.refund(paid, 1337)
    fake.deliver(refund, times=2)
    kinds = [(a["kind"], a["data"].get("sessionId")) for a in alerts(api)][::-1]
    assert kinds == [("purchase_confirmed", paid), ("purchase_failed", failed), ("purchase_expired", expired),
                     ("clawback", None)]
    clawback = alerts(api)[0]
    assert clawback["data"]["amount"] == -(1200 * 1337 // 5000) and clawback["data"]["balance"] == api.balance()


# -- usage and the CSV --------------------------------------------------------------------------------------


def test_the_dashboard_and_the_csv_agree_with_each_other_and_the_balance(stub_api: Api) -> None:
    buy(stub_api, "standard")
    buy(stub_api, "starter")
    for n, (amount, description, feature) in enumerate([(30, "Export, \"quoted\"", None), (12, "Café ☕", None),
                                                        (7, "OCR page", "ocr"), (5, "=HYPERLINK(\"x\")", None)]):
        body = {"description": description} | ({"feature": feature} if feature else {})
        assert spend(stub_api, amount, f"k{n}", **body).status_code == 200
    board = stub_api.get("/api/credits/usage", params={"granularity": "week"}).json()
    assert board["timeZone"] == "UTC" and len(board["buckets"]) == 12
    assert board["totals"]["spent"] == 54 and board["totals"]["clawedBack"] == 0
    assert board["totals"]["purchased"] == 650 and board["totals"]["closingBalance"] == stub_api.balance() == 596
    assert board["byDescription"][:2] == [{"description": "Export, \"quoted\"", "spent": 30},
                                          {"description": "Café ☕", "spent": 12}]
    assert {"description": "ocr", "spent": 7} in board["byDescription"]
    assert set(board["forecast"]) >= {"dailyAverage7", "dailyAverage30", "daysLeft"}
    assert board["forecast"]["daysLeft"] is None  # one active day is not enough to say

    r = stub_api.get("/api/credits/transactions.csv", params={"from": board["from"], "to": board["to"]})
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        f'attachment; filename="creditdesk-transactions-{board["from"]}-to-{board["to"]}.csv"')
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    assert len(rows) == 6
    assert sum(-int(row["amount"]) for row in rows if row["type"] == "spend") == board["totals"]["spent"]
    assert sum(int(row["amount"]) for row in rows if row["type"] == "purchase") == board["totals"]["purchased"]
    assert sum(int(row["amount"]) for row in rows) == int(rows[-1]["balanceAfter"]) == stub_api.balance()
    assert [row["description"] for row in rows if row["type"] == "spend"] == [
        "Export, \"quoted\"", "Café ☕", "OCR page", "'=HYPERLINK(\"x\")"]
    assert [row["feature"] for row in rows if row["type"] == "spend"] == ["", "", "ocr", ""]


@pytest.mark.parametrize(("path", "params"), [
    ("/api/credits/usage", {"granularity": "year"}),
    ("/api/credits/usage", {"from": "2026-02-30"}),
    ("/api/credits/usage", {"from": "2026-12-02", "to": "2026-12-01"}),
    ("/api/credits/usage", {"from": "2020-01-01", "to": "2026-12-01"}),
    ("/api/credits/transactions.csv", {"from": "yesterday"}),
    ("/api/credits/transactions.csv", {"from": "2026-12-02", "to": "2026-12-01"}),
    ("/api/credits/transactions.csv", {"to": "9999-12-31"}),
])
def test_bad_ranges_are_422(stub_api: Api, path: str, params: dict[str, str]) -> None:
    r = stub_api.get(path, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in ("invalid_fields", "invalid_range")


def test_the_csv_defaults_to_this_month(stub_api: Api) -> None:
    r = stub_api.get("/api/credits/transactions.csv")
    today = date.today()
    assert f"creditdesk-transactions-{today.replace(day=1).isoformat()}-to-" in r.headers["content-disposition"]
    assert r.content.decode("utf-8-sig").splitlines() == [
        "id,createdAt,localTime,type,amount,balanceAfter,description,feature,reference,paid,tax,discount,currency,"
        "paidCredits,promotionalCredits"]
