"""Accounts: register, login, logout, tokens, and limits on guessing."""

from __future__ import annotations

import secrets

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess


def test_register_login_logout(stub_backend: BackendProcess) -> None:
    email = f"Ada-{secrets.token_hex(4)}@Example.com"
    api = Api(stub_backend.url)
    r = api.post("/api/auth/register", json={"email": email, "password": "correct horse battery"})
    assert r.status_code == 201
    body = r.json()
    assert body["user"]["email"] == email.lower() and isinstance(body["user"]["id"], int)

    r = api.post("/api/auth/login", json={"email": email.upper(), "password": "correct horse battery"})
    assert r.status_code == 200 and r.json()["user"] == body["user"]
    token = r.json()["token"]
    assert token != body["token"]

    api.token = token
    assert api.get("/api/credits/balance").json() == {"balance": 0}
    assert api.post("/api/auth/logout").status_code == 204
    r = api.get("/api/credits/balance")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    api.token = body["token"]  # the other session still works
    assert api.get("/api/credits/balance").status_code == 200


def test_email_taken_and_wrong_password(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    email = api.user["email"]
    r = Api(stub_backend.url).post("/api/auth/register", json={"email": email, "password": "another password"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "email_taken"
    for wrong in ({"email": email, "password": "not the password"},
                  {"email": "nobody-" + email, "password": "correct horse battery"}):
        r = Api(stub_backend.url).post("/api/auth/login", json=wrong)
        assert r.status_code == 401
        assert r.json()["error"] == {"code": "invalid_credentials", "message": "The email or the password is wrong."}


def test_tokens_are_stored_only_as_hashes_and_passwords_as_argon2(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    rows = stub_backend.query("SELECT token_hash FROM tokens WHERE user_id = ?", api.user["id"])
    assert rows and all(api.token not in row["token_hash"] for row in rows)
    (user,) = stub_backend.query("SELECT password_hash FROM users WHERE id = ?", api.user["id"])
    assert user["password_hash"].startswith("$argon2id$")


def test_bad_tokens_are_401(stub_backend: BackendProcess) -> None:
    for header in ("", "Bearer", "Bearer nope", "Basic abc", "Bearer " + "x" * 5000):
        r = Api(stub_backend.url).get("/api/credits/balance", headers={"Authorization": header} if header else {})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_expired_tokens_stop_working(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    stub_backend.query("UPDATE tokens SET expires_at = 0 WHERE user_id = ?", api.user["id"])
    assert api.get("/api/credits/balance").status_code == 401


def test_login_is_rate_limited_per_email_and_per_address(backend_factory) -> None:
    backend = backend_factory()  # the default limits: 10 a minute per email, 30 per address
    api = Api(backend.url).register("victim@example.com")
    statuses = [Api(backend.url).post("/api/auth/login", json={"email": "victim@example.com",
                                                               "password": f"guess {n}"}).status_code
                for n in range(12)]
    assert statuses[:9] == [401] * 9 and statuses[-1] == 429
    r = Api(backend.url).post("/api/auth/login", json={"email": "victim@example.com", "password": "x"})
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.json()["error"]["code"] == "rate_limited"
    # other emails from the same address run into the per-address limit a little later
    codes = [Api(backend.url).post("/api/auth/login", json={"email": f"u{n}@example.com", "password": "x"}).status_code
             for n in range(25)]
    assert 429 in codes
    assert api.balance() == 0  # the limits do not touch signed-in calls
