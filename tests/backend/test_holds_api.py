"""Holds through the HTTP API of the real backend, on both engines (the contract's ``/api/credits/holds`` rows and
the listing this project adds), with ``check`` and ``user`` on the same database."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.concurrency import all_at_once

PAST = "2026-01-01T00:00:00.000Z"


def buy(api: Api, pack: str = "starter") -> None:
    checkout = api.checkout(pack)
    requests.post(checkout["url"] + "/pay", timeout=10)


def place(api: Api, amount: int, key: str, **extra: Any) -> requests.Response:
    return api.post("/api/credits/holds", json={"amount": amount, "idempotencyKey": key, **extra})


def settle(api: Api, hold_id: str, amount: int) -> requests.Response:
    return api.post(f"/api/credits/holds/{hold_id}/settle", json={"amount": amount})


def void(api: Api, hold_id: str) -> requests.Response:
    return api.post(f"/api/credits/holds/{hold_id}/void", json={})


def listing(api: Api) -> dict[str, Any]:
    r = api.get("/api/credits/holds")
    assert r.status_code == 200, r.text
    return r.json()


def error(r: requests.Response) -> str:
    return str(r.json()["error"]["code"])


def test_reserve_then_settle_spends_once_and_the_history_shows_one_spend(stub_api: Api) -> None:
    buy(stub_api)  # 100 credits
    r = place(stub_api, 33, "render-1", description="Render scene 4", feature="render", expiresInSeconds=600)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "amount", "status", "expiresAt", "available"}
    assert body["id"].startswith("hold_") and (body["amount"], body["status"], body["available"]) == (33, "open", 67)
    assert stub_api.get("/api/credits/balance").json()["balance"] == 100  # the balance stays the balance

    r = settle(stub_api, body["id"], 21)
    assert r.status_code == 200, r.text
    done = r.json()
    assert set(done) == {"transactionId", "spent", "released", "balance"}
    assert (done["spent"], done["released"], done["balance"]) == (21, 12, 79)
    (spent, _) = stub_api.transactions()
    assert (spent["id"], spent["type"], spent["amount"], spent["balanceAfter"], spent["reference"],
            spent["description"]) == (done["transactionId"], "spend", -21, 79, body["id"], "Render scene 4")

    again = settle(stub_api, body["id"], 21)  # once only, retried or not
    assert (again.status_code, error(again)) == (409, "hold_closed")
    assert again.json()["error"]["details"] == {"holdId": body["id"], "status": "settled"}
    assert (void(stub_api, body["id"]).status_code, stub_api.balance()) == (409, 79)
    (listed,) = listing(stub_api)["holds"]
    assert {k: listed[k] for k in ("status", "spent", "released", "transactionId", "feature")} == {
        "status": "settled", "spent": 21, "released": 12, "transactionId": done["transactionId"], "feature": "render"}


def test_void_gives_everything_back_and_nothing_enters_the_ledger(stub_api: Api) -> None:
    buy(stub_api)
    hold_id = place(stub_api, 40, "op").json()["id"]
    assert listing(stub_api)["reserved"] == 40 and listing(stub_api)["available"] == 60
    r = void(stub_api, hold_id)
    assert (r.status_code, r.json()) == (200, {"released": 40, "balance": 100})
    assert [t["type"] for t in stub_api.transactions()] == ["purchase"]
    assert listing(stub_api)["holds"][0]["status"] == "voided" and listing(stub_api)["available"] == 100
    assert error(settle(stub_api, hold_id, 1)) == "hold_closed"
    # An empty body, or none at all, is a void; a field is not.
    other = place(stub_api, 1, "op-2").json()["id"]
    assert stub_api.post(f"/api/credits/holds/{other}/void", json={"amount": 1}).status_code == 422
    assert stub_api.post(f"/api/credits/holds/{other}/void").status_code == 200


def test_spends_and_holds_share_the_available_balance(stub_api: Api) -> None:
    buy(stub_api)
    place(stub_api, 33, "a")
    place(stub_api, 33, "b")
    r = stub_api.post("/api/credits/spend", json={"amount": 35, "idempotencyKey": "s1"})
    assert (r.status_code, error(r)) == (402, "insufficient_credits")
    assert "34 are available" in r.json()["error"]["message"]
    assert stub_api.post("/api/credits/spend", json={"amount": 34, "idempotencyKey": "s2"}).json()["balance"] == 66
    r = place(stub_api, 1, "c")
    assert (r.status_code, error(r)) == (402, "insufficient_credits")


def test_a_repeated_key_answers_as_the_first_time_and_another_body_is_409(stub_api: Api) -> None:
    buy(stub_api)
    first = place(stub_api, 10, "k", description="x")
    place(stub_api, 5, "other")
    again = place(stub_api, 10, "k", description="x")
    assert (again.status_code, again.json()) == (201, first.json())
    assert listing(stub_api)["reserved"] == 15
    r = place(stub_api, 11, "k", description="x")
    assert (r.status_code, error(r)) == (409, "idempotency_key_reused")


@pytest.mark.engines("sqlite")
@pytest.mark.parametrize(("path", "body", "field"), [
    ("", {"amount": 1, "idempotencyKey": "k", "expiresInSeconds": 86_401}, "expiresInSeconds"),
    ("", {"amount": 1, "idempotencyKey": "k", "expiresInSeconds": 0}, "expiresInSeconds"),
    ("", {"amount": 0, "idempotencyKey": "k"}, "amount"),
    ("/hold_x/settle", {"amount": -1}, "amount"),
    ("/hold_x/settle", {}, "amount"),
])
def test_bad_fields_are_422(stub_api: Api, path: str, body: dict[str, Any], field: str) -> None:
    r = stub_api.post("/api/credits/holds" + path, json=body)
    assert (r.status_code, error(r)) == (422, "invalid_fields") and field in r.json()["error"]["message"]


def test_a_day_is_the_longest_hold_and_a_settle_above_the_hold_is_422(stub_api: Api) -> None:
    buy(stub_api)
    r = place(stub_api, 5, "day", expiresInSeconds=86_400)
    assert r.status_code == 201, r.text
    hold_id = r.json()["id"]
    r = settle(stub_api, hold_id, 6)
    assert (r.status_code, error(r), r.json()["error"]["details"]) == (422, "amount_above_hold",
                                                                       {"amount": 6, "held": 5})
    r = settle(stub_api, hold_id, 0)  # the operation cost nothing: settled, nothing spent, no entry
    assert (r.status_code, r.json()) == (200, {"transactionId": None, "spent": 0, "released": 5, "balance": 100})
    assert [t["type"] for t in stub_api.transactions()] == ["purchase"]


def test_another_users_hold_is_unknown(stub_backend: BackendProcess, stub_api: Api) -> None:
    buy(stub_api)
    hold_id = place(stub_api, 5, "k").json()["id"]
    other = Api(stub_backend.url).register()
    for r in (settle(other, hold_id, 1), void(other, hold_id), settle(other, "hold_none", 1)):
        assert (r.status_code, error(r)) == (404, "unknown_hold")
    assert listing(other)["holds"] == []
    assert void(stub_api, hold_id).status_code == 200


def test_an_expired_hold_is_released_refused_and_swept_by_check(stub_backend: BackendProcess, stub_api: Api) -> None:
    buy(stub_api)
    hold_id = place(stub_api, 60, "k").json()["id"]
    # The clock: the hold's expiry moved into the past, as if its 15 minutes had gone by.
    stub_backend.query("UPDATE holds SET expires_at = ? WHERE id = ?", PAST, hold_id)
    assert (listing(stub_api)["reserved"], listing(stub_api)["holds"][0]["status"]) == (0, "expired")
    assert listing(stub_api)["holds"][0]["closedAt"] == PAST
    r = settle(stub_api, hold_id, 10)
    assert (r.status_code, r.json()["error"]["details"]["status"]) == (409, "expired")
    assert stub_api.post("/api/credits/spend", json={"amount": 100, "idempotencyKey": "all"}).status_code == 200
    r = stub_backend.admin("check")
    assert r.returncode == 0 and "the ledger adds up" in r.stdout, r.stdout + r.stderr
    assert stub_backend.query("SELECT status, closed_at FROM holds WHERE id = ?", hold_id)[0]["status"] == "expired"


def test_support_sees_open_holds(stub_backend: BackendProcess, stub_api: Api) -> None:
    buy(stub_api)
    hold_id = place(stub_api, 42, "support-k", description="Transcribe", feature="audio").json()["id"]
    email = stub_api.user["email"]
    r = stub_backend.admin("user", email)
    assert r.returncode == 0, r.stderr
    assert "Reserved by 1 open hold(s) 42 credits, available 58" in r.stdout and hold_id in r.stdout
    report = json.loads(stub_backend.admin("user", email, "--json").stdout)
    assert (report["balance"], report["reserved"], report["available"]) == (100, 42, 58)
    (held,) = report["openHolds"]
    assert (held["id"], held["amount"], held["feature"], held["idempotencyKey"]) == (hold_id, 42, "audio", "support-k")
    void(stub_api, hold_id)
    assert json.loads(stub_backend.admin("user", email, "--json").stdout)["openHolds"] == []


def test_settles_and_voids_racing_on_one_hold_close_it_once(stub_backend: BackendProcess, stub_api: Api) -> None:
    buy(stub_api)
    for round_ in range(3):
        hold_id = place(stub_api, 30, f"race-{round_}").json()["id"]

        def close(i: int, hold_id: str = hold_id) -> tuple[int, str]:
            api = Api(stub_backend.url, stub_api.token)
            r = settle(api, hold_id, 7) if i % 2 else void(api, hold_id)
            return r.status_code, r.text

        answers = all_at_once(12, close)
        assert sorted(status for status, _ in answers) == [200] + [409] * 11, answers  # type: ignore[misc]
    spent = [t for t in stub_api.transactions() if t["type"] == "spend"]
    assert all(t["amount"] == -7 for t in spent) and stub_api.balance() == 100 - 7 * len(spent)
    assert listing(stub_api)["reserved"] == 0
    assert stub_backend.admin("check").returncode == 0
