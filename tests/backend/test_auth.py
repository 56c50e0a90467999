"""Accounts: register, login, logout, tokens, and limits on guessing.

The limits on guessing are counted in memory (or Redis), never in the database, and a bad token is refused by
its shape or its hash: those run once, on SQLite (the module's ``engines`` marker). On both engines run what
writes accounts and tokens and reads them back: signing up, in and out (the token is found by a hot statement,
run on SQLite's own cursor), an email taken (each engine's INSERT that ignores a duplicate), a token past its
expiry (a comparison in SQL), and emails spelt with accents, full-width letters or a Unicode domain, stored and
compared by each engine.
"""

from __future__ import annotations

import secrets

import pytest
import requests

from backend.config import Settings
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess

pytestmark = pytest.mark.engines("sqlite")


@pytest.mark.engines("sqlite", "postgresql")
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
    assert api.get("/api/credits/balance").json()["balance"] == 0
    assert api.post("/api/auth/logout").status_code == 204
    r = api.get("/api/credits/balance")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    api.token = body["token"]  # the other session still works
    assert api.get("/api/credits/balance").status_code == 200


@pytest.mark.engines("sqlite", "postgresql")
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


@pytest.mark.engines("sqlite", "postgresql")
def test_expired_tokens_stop_working(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    stub_backend.query("UPDATE tokens SET expires_at = 0 WHERE user_id = ?", api.user["id"])
    assert api.get("/api/credits/balance").status_code == 401


def login(backend: BackendProcess, email: str, password: str, address: str | None = None) -> requests.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    return Api(backend.url).post("/api/auth/login", json={"email": email, "password": password}, headers=headers)


def test_guesses_from_one_address_do_not_lock_out_the_owner(backend_factory) -> None:
    # Behind a proxy on 127.0.0.1, so that X-Forwarded-For gives each request its client's address.
    backend = backend_factory({"CREDITDESK_TRUSTED_PROXIES": "127.0.0.1"})
    Api(backend.url).register("victim@example.com")
    guesser, owner = "203.0.113.5", "198.51.100.7"
    statuses = [login(backend, "victim@example.com", f"guess {n}", guesser).status_code for n in range(7)]
    assert statuses == [401] * 5 + [429] * 2
    r = login(backend, "Victim@Example.com", "correct horse battery", guesser)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60  # the right one too, from there
    assert r.json()["error"]["code"] == "rate_limited"
    assert login(backend, "victim@example.com", "correct horse battery", owner).status_code == 200
    # The guesser's address runs into its own limit (30 a minute) whatever emails it tries.
    codes = [login(backend, f"u{n}@example.com", "x", guesser).status_code for n in range(30)]
    assert codes[-1] == 429 and codes.count(401) == 30 - 8
    assert login(backend, "victim@example.com", "correct horse battery", owner).status_code == 200


def test_a_right_password_clears_the_count_of_wrong_ones(backend_factory) -> None:
    backend = backend_factory()
    Api(backend.url).register("forgetful@example.com")
    for _ in range(3):
        assert [login(backend, "forgetful@example.com", "wrong").status_code for _ in range(4)] == [401] * 4
        assert login(backend, "forgetful@example.com", "correct horse battery").status_code == 200


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(backend_factory) -> None:
    plain = backend_factory(name="no-proxy")  # the default, as the bundled backend runs: trusts no one
    codes = [login(plain, f"spoof{n}@example.com", "x", f"10.0.{n}.1").status_code for n in range(31)]
    assert codes[:30] == [401] * 30 and codes[30] == 429  # a new address per request changes nothing
    proxied = backend_factory({"CREDITDESK_TRUSTED_PROXIES": "127.0.0.1"}, name="proxy")
    codes = [login(proxied, f"junk{n}@example.com", "x", f"not-an-address-{n}").status_code for n in range(31)]
    assert codes[:30] == [401] * 30 and codes[30] == 429  # what is not an IP address is not an address
    assert login(proxied, "junk@example.com", "x", "192.0.2.44").status_code == 401  # a real one is


@pytest.mark.engines("sqlite", "postgresql")
@pytest.mark.parametrize(("registered", "signs_in_as"), [
    ("Jose\u0301@example.com", "José@example.com"),  # a combining accent, and the accented letter
    ("ada@bücher.example", "ADA@xn--bcher-kva.example"),  # a Unicode domain, and its IDNA form
    ("\uff41\uff44\uff41@example.org", "ada@example.org"),  # full-width letters
])
def test_register_and_login_spell_an_email_the_same_way(
    stub_backend: BackendProcess, registered: str, signs_in_as: str
) -> None:
    tag = secrets.token_hex(3)
    registered, signs_in_as = registered.replace("@", f"{tag}@"), signs_in_as.replace("@", f"{tag}@")
    api = Api(stub_backend.url).register(registered)
    r = login(stub_backend, signs_in_as, "correct horse battery")
    assert r.status_code == 200 and r.json()["user"]["id"] == api.user["id"]
    r = Api(stub_backend.url).post("/api/auth/register", json={"email": signs_in_as, "password": "another one!"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "email_taken"


def test_guesses_from_many_addresses_meet_a_ceiling_per_account(backend_factory) -> None:
    backend = backend_factory({"CREDITDESK_TRUSTED_PROXIES": "127.0.0.1",
                               "CREDITDESK_SIGNIN_LIMIT_PER_ACCOUNT": "9/hour"})
    Api(backend.url).register("victim@example.com")
    botnet = [f"203.0.113.{n}" for n in range(1, 6)]
    statuses = [login(backend, "victim@example.com", f"guess {n}", address).status_code
                for n, address in enumerate(botnet * 2)]
    assert statuses == [401] * 9 + [429]  # each address far from its own limit; together at the ceiling
    assert login(backend, "victim@example.com", "guess", "198.51.100.99").status_code == 429  # a new place too
    assert login(backend, "someone-else@example.com", "guess", botnet[0]).status_code == 401  # one account only


def test_ipv6_clients_are_counted_by_their_64(backend_factory) -> None:
    backend = backend_factory({"CREDITDESK_TRUSTED_PROXIES": "127.0.0.1"})
    Api(backend.url).register("victim@example.com")
    # One host rotating through the addresses of its /64: one count, as one address would be.
    rotating = [f"2001:db8:0:1::{n:x}" for n in range(1, 8)]
    statuses = [login(backend, "victim@example.com", "guess", address).status_code for address in rotating]
    assert statuses == [401] * 5 + [429] * 2
    assert login(backend, "victim@example.com", "correct horse battery", "2001:db8:0:2::1").status_code == 200


def test_the_ceiling_per_account_is_above_what_one_place_may_try() -> None:
    """One place alone can never lock the owner out: its own limit stops it below the ceiling, in every window."""
    from limits import parse_many

    settings = Settings()
    one_place = {item.get_expiry(): item.amount for item in parse_many(settings.signin_limit_per_account_and_address)}
    everywhere = parse_many(settings.signin_limit_per_account)
    for ceiling in everywhere:
        allowed_from_one_place = min(amount * ceiling.get_expiry() // expiry for expiry, amount in one_place.items()
                                     if expiry <= ceiling.get_expiry())
        assert ceiling.amount > allowed_from_one_place, (ceiling, allowed_from_one_place)


def test_only_wrong_passwords_count_towards_the_ceiling_per_account(backend_factory) -> None:
    """The owner signing in from one place as often as its own limit lets (a right password clears that one) never
    meets the ceiling; and a right password clears nothing of what guessers counted towards it."""
    backend = backend_factory({"CREDITDESK_TRUSTED_PROXIES": "127.0.0.1",
                               "CREDITDESK_SIGNIN_LIMIT_PER_ACCOUNT": "3/hour"})
    Api(backend.url).register("owner@example.com")
    home, right = "198.51.100.7", "correct horse battery"
    assert [login(backend, "owner@example.com", right, home).status_code for _ in range(7)] == [200] * 7
    assert [login(backend, "owner@example.com", "guess", f"203.0.113.{n}").status_code for n in (1, 2)] == [401] * 2
    assert login(backend, "owner@example.com", right, home).status_code == 200
    assert login(backend, "owner@example.com", "guess", "203.0.113.3").status_code == 401
    r = login(backend, "owner@example.com", right, home)  # three wrong ones from three places: the ceiling
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 3600
