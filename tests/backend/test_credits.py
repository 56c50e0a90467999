"""Balance, history and spending through the API."""

from __future__ import annotations

import threading

import pytest
import requests

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess


def buy(api: Api, pack: str = "starter") -> str:
    checkout = api.checkout(pack)
    requests.post(checkout["url"] + "/pay", timeout=10)
    return checkout["sessionId"]


def spend(api: Api, amount: int, key: str, description: str | None = None) -> requests.Response:
    body: dict[str, object] = {"amount": amount, "idempotencyKey": key}
    if description is not None:
        body["description"] = description
    return api.post("/api/credits/spend", json=body)


def test_spend_and_history(stub_api: Api) -> None:
    buy(stub_api)
    r = spend(stub_api, 30, "order-1", "Export a report")
    assert r.status_code == 200 and r.json()["balance"] == 70
    (latest, purchase) = stub_api.transactions()
    assert latest == {
        "id": r.json()["transactionId"], "type": "spend", "amount": -30, "balanceAfter": 70,
        "createdAt": latest["createdAt"], "reference": "order-1", "description": "Export a report",
    }
    assert latest["createdAt"].endswith("Z") and purchase["type"] == "purchase"


@pytest.mark.engines("sqlite")  # HTTP's shape: the engines' lookups are the same call
def test_a_spend_s_token_is_checked_before_its_body_is_used_and_an_unknown_one_spends_nothing(
        stub_backend: BackendProcess) -> None:
    """The spend looks its token up on the worker thread that spends (one hop): still 401 for a missing or malformed
    token whatever the body, 401 for an unknown token with a good body, and 422 for a body that is no spend."""
    owner = Api(stub_backend.url).register()
    buy(owner)
    good = {"amount": 5, "idempotencyKey": "k-1", "description": "Export a report"}
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}):
        for body in (good, {"amount": "lots"}):
            r = Api(stub_backend.url).post("/api/credits/spend", json=body, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (headers, body)
    unknown = Api(stub_backend.url, token="not-a-token-anyone-was-given")
    r = unknown.post("/api/credits/spend", json=good)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = unknown.post("/api/credits/spend", json={"amount": "lots"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_fields"
    assert owner.get("/api/credits/balance").json()["balance"] == 100  # nothing spent by any of them
    r = owner.post("/api/credits/spend", json=good)
    assert r.status_code == 200 and r.json()["balance"] == 95


def test_the_same_key_twice_spends_once_and_another_body_is_409(stub_api: Api) -> None:
    buy(stub_api)
    first = spend(stub_api, 30, "k")
    assert spend(stub_api, 30, "k").json() == first.json()
    spend(stub_api, 5, "other")
    assert spend(stub_api, 30, "k").json() == first.json()  # answers as the first time did
    conflict = spend(stub_api, 31, "k")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_key_reused"
    assert spend(stub_api, 30, "k", "a different description").status_code == 409
    assert stub_api.balance() == 65


def test_idempotency_keys_belong_to_their_user(stub_backend: BackendProcess) -> None:
    alice, bob = Api(stub_backend.url).register(), Api(stub_backend.url).register()
    buy(alice)
    buy(bob)
    assert spend(alice, 10, "shared-key").status_code == 200
    assert spend(bob, 20, "shared-key").json()["balance"] == 80


def test_spending_beyond_the_balance_is_402_and_changes_nothing(stub_api: Api) -> None:
    buy(stub_api)
    r = spend(stub_api, 101, "too-much")
    assert r.status_code == 402 and r.json()["error"]["code"] == "insufficient_credits"
    assert stub_api.balance() == 100 and len(stub_api.transactions()) == 1
    assert spend(stub_api, 100, "all").json()["balance"] == 0
    assert spend(stub_api, 1, "one-more").status_code == 402


def test_the_same_key_sent_concurrently_spends_once(stub_backend: BackendProcess, stub_api: Api) -> None:
    buy(stub_api)
    barrier = threading.Barrier(12)
    answers: list[requests.Response] = []

    def send() -> None:
        api = Api(stub_backend.url, stub_api.token)
        barrier.wait()
        answers.append(spend(api, 7, "retry-me"))

    threads = [threading.Thread(target=send) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in answers} == {200}
    assert {r.json()["transactionId"] for r in answers} == {answers[0].json()["transactionId"]}
    assert stub_api.balance() == 93


def test_history_pages(stub_api: Api) -> None:
    buy(stub_api, "pro")
    for n in range(5):
        spend(stub_api, n + 1, f"k{n}")
    r = stub_api.get("/api/credits/transactions", params={"limit": 4})
    page = r.json()
    assert [t["amount"] for t in page["transactions"]] == [-5, -4, -3, -2]
    rest = stub_api.get("/api/credits/transactions", params={"limit": 4, "before": page["nextCursor"]}).json()
    assert [t["amount"] for t in rest["transactions"]] == [-1, 1200] and rest["nextCursor"] is None


def test_a_host_that_asks_for_descriptions_refuses_spends_and_holds_without_one(  # type: ignore[no-untyped-def]
    backend_factory,
) -> None:
    """CREDITDESK_REQUIRE_DESCRIPTION=1: a spend or hold with no description, or only blanks, is 422
    description_required and takes nothing; with one it goes through (on both engines). Without the setting, the
    other tests here spend with none."""
    backend = backend_factory({"CREDITDESK_REQUIRE_DESCRIPTION": "1"})
    api = Api(backend.url).register()
    buy(api)  # 100 credits
    for n, description in enumerate((None, "", "   ")):
        refused = spend(api, 7, f"k-{n}", description)
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "description_required", refused.text
        held = api.request("POST", "/api/credits/holds", json={"amount": 7, "idempotencyKey": f"h-{n}",
                                                               **({} if description is None else
                                                                  {"description": description})})
        assert held.status_code == 422 and held.json()["error"]["code"] == "description_required"
    assert api.get("/api/credits/balance").json()["balance"] == 100
    assert api.get("/api/credits/holds").json()["holds"] == []
    done = spend(api, 7, "k-said", "Render the trailer")
    assert done.status_code == 200 and done.json()["balance"] == 93
