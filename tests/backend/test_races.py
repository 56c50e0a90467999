"""Requests that race on one backend end as if they had come one at a time, on either engine."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import requests

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess


def test_sign_ups_racing_for_one_email_make_one_account_and_the_rest_are_409(stub_backend: BackendProcess) -> None:
    email = f"race-{secrets.token_hex(4)}@example.com"
    start = Barrier(8)

    def sign_up(n: int) -> requests.Response:
        start.wait()
        return requests.post(f"{stub_backend.url}/api/auth/register",
                             json={"email": email, "password": f"password number {n}"}, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(sign_up, range(8)))
    assert sorted(r.status_code for r in answers) == [201] + [409] * 7
    assert all(r.json()["error"]["code"] == "email_taken" for r in answers if r.status_code == 409)
    (row,) = stub_backend.query("SELECT COUNT(*) AS n FROM users WHERE email = ?", email)
    assert row["n"] == 1
    (winner,) = [r for r in answers if r.status_code == 201]
    assert Api(stub_backend.url, winner.json()["token"]).balance() == 0


def test_spends_racing_on_one_balance_take_no_more_than_it_holds(stub_backend: BackendProcess, stub_api: Api) -> None:
    checkout = stub_api.checkout("starter")  # 100 credits
    requests.post(checkout["url"] + "/pay", timeout=30)
    start = Barrier(16)

    def spend(n: int) -> int:
        start.wait()
        api = Api(stub_backend.url, stub_api.token)
        return api.post("/api/credits/spend", json={"amount": 7, "idempotencyKey": f"race-{n}"}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(spend, range(16)))
    assert sorted(statuses) == [200] * 14 + [402] * 2  # 14 x 7 = 98 of 100
    assert stub_api.balance() == 2
