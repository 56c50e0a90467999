"""Bad input of every kind gets a clear 4xx in the contract's shape, never a 500, and writes nothing.

Most of it is refused by the HTTP layer before any database is asked, the same on either engine: those tests
run once, on SQLite (the module's ``engines`` marker). On both engines run the values the two engines would
treat differently if one ever got through: text holding NUL (PostgreSQL's text cannot hold it, SQLite stores
it), long text and numbers beyond 64 bits (:data:`BEYOND_A_COLUMN`), and every text input of the API (from
/openapi.json) with NUL in it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess

TABLES = ("users", "tokens", "ledger_entries", "balances", "orders", "webhook_events", "stub_sessions")

HUGE = 10**30
BAD_JSON_BODIES = [
    "{", "[]", "null", "1", '"text"', "{}", "\x00\x01", '{"a": NaN}', "{" * 5000 + "}" * 5000,
]

CASES: list[tuple[str, str, object]] = [
    ("POST", "/api/auth/register", {"email": "not-an-email", "password": "long enough pw"}),
    ("POST", "/api/auth/register", {"email": "a@example.com", "password": "short"}),
    ("POST", "/api/auth/register", {"email": "a@example.com", "password": 12345678}),
    ("POST", "/api/auth/register", {"email": "a@example.com", "password": "long enough pw", "admin": True}),
    ("POST", "/api/auth/login", {"email": ["a"], "password": "x"}),
    ("POST", "/api/auth/login", {"email": "a@example.com"}),
    ("POST", "/api/billing/checkout", {"packId": 1}),
    ("POST", "/api/billing/checkout", {"packId": "starter", "amount": 1}),
    ("POST", "/api/billing/checkout", {"packId": "starter", "credits": 1_000_000}),
    ("POST", "/api/credits/spend", {"amount": -5, "idempotencyKey": "k"}),
    ("POST", "/api/credits/spend", {"amount": 0, "idempotencyKey": "k"}),
    ("POST", "/api/credits/spend", {"amount": 1.5, "idempotencyKey": "k"}),
    ("POST", "/api/credits/spend", {"amount": "5", "idempotencyKey": "k"}),
    ("POST", "/api/credits/spend", {"amount": True, "idempotencyKey": "k"}),
    ("POST", "/api/credits/spend", {"amount": 5}),
    ("POST", "/api/credits/spend", {"amount": 5, "idempotencyKey": ""}),
    ("POST", "/api/credits/spend", {"amount": 5, "idempotencyKey": "with space"}),
    ("POST", "/api/credits/spend", {"amount": 5, "idempotencyKey": "k", "userId": 1}),
    ("GET", "/api/credits/transactions?limit=0", None),
    ("GET", "/api/credits/transactions?limit=100000", None),
    ("GET", "/api/credits/transactions?limit=abc", None),
    ("GET", "/api/credits/transactions?before=-1", None),
    ("GET", "/api/billing/verify-payment", None),
    ("GET", "/api/nowhere", None),
    ("DELETE", "/api/credits/balance", None),
]


# Refused before the database, but the engines would not take them alike: an indexed text beyond about 2,700 bytes
# fails on PostgreSQL (a B-tree entry's limit) and not on SQLite, and a number beyond 64 bits fails in a different
# place on each.
BEYOND_A_COLUMN: list[tuple[str, str, object]] = [
    ("POST", "/api/auth/register", {"email": "a@example.com" * 40, "password": "long enough pw"}),
    ("POST", "/api/billing/checkout", {"packId": "x" * 10_000}),
    ("POST", "/api/billing/checkout", {"packId": "starter", "state": "s" * 10_000}),
    ("POST", "/api/credits/spend", {"amount": HUGE, "idempotencyKey": "k"}),
    ("POST", "/api/credits/spend", {"amount": 5, "idempotencyKey": "k" * 300}),
    ("POST", "/api/credits/spend", {"amount": 5, "idempotencyKey": "k", "description": "d" * 600}),
    ("GET", f"/api/credits/transactions?before={HUGE}", None),
    ("GET", "/api/billing/verify-payment?session_id=" + "x" * 1000, None),
]

pytestmark = pytest.mark.engines("sqlite")


def counts(backend: BackendProcess) -> dict[str, int]:
    return {t: backend.query(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t in TABLES}  # noqa: S608


def assert_clean_error(r: requests.Response) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"].replace("_", "").isalpha() and body["error"]["message"]
    assert "Traceback" not in r.text


@pytest.fixture(scope="module")
def backend(
    tmp_path_factory: pytest.TempPathFactory, db_engine: str, request: pytest.FixtureRequest
) -> BackendProcess:
    from tests.conftest import SHARED_ENV, Databases

    made = Databases(db_engine, request)
    with BackendProcess(tmp_path_factory.mktemp("bad-input"), SHARED_ENV, database_url=made.new()) as backend:
        yield backend
    made.drop_all()


def refused_writing_nothing(backend: BackendProcess, method: str, path: str, body: object) -> None:
    api = Api(backend.url).register()
    before = counts(backend)
    r = api.request(method, path, json=body) if body is not None else api.request(method, path)
    assert_clean_error(r)
    assert counts(backend) == before


@pytest.mark.parametrize(("method", "path", "body"), CASES)
def test_bad_fields(backend: BackendProcess, method: str, path: str, body: object) -> None:
    refused_writing_nothing(backend, method, path, body)


@pytest.mark.engines("sqlite", "postgresql")
@pytest.mark.parametrize(("method", "path", "body"), BEYOND_A_COLUMN)
def test_values_beyond_what_a_column_holds(backend: BackendProcess, method: str, path: str, body: object) -> None:
    refused_writing_nothing(backend, method, path, body)


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/billing/checkout",
                                  "/api/credits/spend"])
@pytest.mark.parametrize("raw", BAD_JSON_BODIES)
def test_bad_json(backend: BackendProcess, path: str, raw: str) -> None:
    api = Api(backend.url).register()
    before = counts(backend)
    r = api.post(path, data=raw.encode(), headers={"Content-Type": "application/json"})
    assert_clean_error(r)
    assert counts(backend) == before


def test_malformed_json_is_400_invalid_json(backend: BackendProcess) -> None:
    r = Api(backend.url).register().post("/api/credits/spend", data=b"{",
                                          headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_a_huge_body_is_refused(backend: BackendProcess) -> None:
    api = Api(backend.url).register()
    before = counts(backend)
    payload = json.dumps({"amount": 1, "idempotencyKey": "k", "description": "x" * (2 * 1024 * 1024)})
    r = api.post("/api/credits/spend", data=payload, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit still holds
        for _ in range(40):
            yield b"x" * 65536

    r = api.post("/api/credits/spend", data=chunks(), headers={"Content-Type": "application/json"})
    assert_clean_error(r)
    assert counts(backend) == before


def test_webhooks_without_a_secret_are_refused_in_stub_mode(backend: BackendProcess) -> None:
    r = requests.post(f"{backend.url}/api/webhooks/stripe", data=b"{}", timeout=5,
                      headers={"Stripe-Signature": "t=1,v1=00"})
    assert_clean_error(r)


# Every text the API reads, with NUL in it (JSON's \u0000; %00 in a query or a path): PostgreSQL's text cannot
# hold it. Refused as bad input on both engines, nothing written, nothing of it in the log beyond its length.
NUL = "evil\u0000\u001b]0;pwned\u0007"
NUL_CASES: list[tuple[str, str, object]] = [
    ("POST", "/api/auth/register", {"email": f"a{NUL}@example.com", "password": "long enough pw"}),
    ("POST", "/api/auth/register", {"email": "nul@example.com", "password": f"long enough {NUL}"}),
    ("POST", "/api/auth/login", {"email": f"a{NUL}@example.com", "password": "long enough pw"}),
    ("POST", "/api/billing/checkout", {"packId": f"starter{NUL}"}),
    ("POST", "/api/billing/checkout", {"packId": "starter", "returnUrl": f"http://127.0.0.1:9/{NUL}"}),
    ("POST", "/api/billing/checkout", {"packId": "starter", "state": NUL}),
    ("POST", "/api/billing/cancel", {"sessionId": f"cs_{NUL}"}),
    ("POST", "/api/credits/spend", {"amount": 1, "idempotencyKey": f"k{NUL}"}),
    ("POST", "/api/credits/spend", {"amount": 1, "idempotencyKey": "k-nul", "description": NUL}),
    ("POST", "/api/credits/spend", {"amount": 1, "idempotencyKey": "k-nul", "feature": NUL}),
    ("PUT", "/api/credits/controls", {"timeZone": f"Europe/Paris{NUL}"}),
    ("POST", "/api/auth/register", {f"email{NUL}": "a@example.com", "password": "long enough pw"}),
    ("GET", "/api/billing/verify-payment?session_id=cs_evil%00%1b%5d0", None),
    ("GET", "/api/credits/transactions?before=1%00", None),
    ("GET", "/api/credits/usage?granularity=day%00", None),
    ("GET", "/api/credits/transactions.csv?from=2026-01-01%00", None),
    ("GET", "/account/credits/success?session_id=cs_evil%00", None),
    ("GET", "/account/credits/cancel?order_id=ord_evil%00", None),
    ("POST", "/account/credits/cancel?order_id=ord_evil%00", None),
    ("GET", "/stub/checkout/cs_evil%00", None),
]


@pytest.mark.engines("sqlite", "postgresql")
@pytest.mark.parametrize(("method", "path", "body"), NUL_CASES)
def test_text_holding_nul_is_refused_as_bad_input(backend: BackendProcess, method: str, path: str,
                                                  body: object) -> None:
    api = Api(backend.url).register()
    before = counts(backend)
    r = api.request(method, path, json=body) if body is not None else api.request(method, path)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_text", r.text
    assert counts(backend) == before
    log = backend.log_with('" 400')
    assert "pwned" not in log and "%00" not in log and "\x00" not in log and "%1b" not in log


@pytest.mark.engines("sqlite", "postgresql")
def test_a_json_backslash_before_u0000_is_not_nul(backend: BackendProcess) -> None:
    api = Api(backend.url).register()
    r = api.post("/api/credits/spend", data=b'{"amount": 1, "idempotencyKey": "k-bs", "description": "a\\\\u0000"}',
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 402  # read as the six characters \u0000, and refused for want of credits only


def text_inputs(spec: dict[str, Any]) -> list[tuple[str, str, str, object]]:
    """Every text a client can send, from the server's own /openapi.json (so a route added later is covered
    without a row here): each query and path parameter, and each string field of each JSON body, nested ones
    too; as (method, URL path with query, what it is, body with NUL in that field or None)."""
    found: list[tuple[str, str, str, object]] = []
    for path, operations in spec["paths"].items():
        if path == "/api/webhooks/stripe":  # Stripe's own: a signed event holding NUL is answered 200, refused
            continue
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                name, where = parameter["name"], parameter["in"]
                if where == "query":
                    found.append((method.upper(), f"{path}?{name}=x%00{ESCAPE}", f"query {name}", None))
                elif where == "path":
                    found.append((method.upper(), path.replace(f"{{{name}}}", f"x%00{ESCAPE}"), f"path {name}", None))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is not None:
                for field, value in nul_bodies(spec, body):
                    found.append((method.upper(), path, f"body {field}", value))
    return found


ESCAPE = "%1b%5d0;pwned%07"


def nul_bodies(spec: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[tuple[str, object]]:
    """For each string field of an object schema (through $ref, anyOf, nested objects and arrays): a body with
    NUL in that field and plain values in the required others; and one with NUL in an unknown field's name."""
    schema = resolve(spec, schema)
    properties = schema.get("properties", {})
    plain = {name: plain_value(spec, properties[name]) for name in schema.get("required", [])}
    bodies: list[tuple[str, object]] = [(f"{prefix}<a field's name>", {**plain, f"note\u0000{NUL}": "x"})]
    for name, field in properties.items():
        for kind in alternatives(spec, field):
            if kind.get("type") == "string":
                bodies.append((prefix + name, {**plain, name: f"x{NUL}"}))
            elif kind.get("type") == "array" and resolve(spec, kind.get("items", {})).get("type") == "string":
                bodies.append((prefix + name, {**plain, name: [f"x{NUL}"]}))
            elif kind.get("type") == "object" or "properties" in kind:
                bodies += [(inner, {**plain, name: value}) for inner, value in nul_bodies(spec, kind, f"{name}.")]
    return bodies


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def alternatives(spec: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [resolve(spec, kind) for kind in schema.get("anyOf", [schema])]


def plain_value(spec: dict[str, Any], schema: dict[str, Any]) -> object:
    kinds = {kind.get("type") for kind in alternatives(spec, schema)}
    return 1 if "integer" in kinds else True if "boolean" in kinds else [] if "array" in kinds else "x"


@pytest.mark.engines("sqlite", "postgresql")
def test_every_text_input_of_the_api_refuses_nul(backend: BackendProcess) -> None:
    spec = requests.get(f"{backend.url}/openapi.json", timeout=10).json()
    inputs = text_inputs(spec)
    names = {(method, path.split("?")[0], what) for method, path, what, _ in inputs}
    assert {("POST", "/api/credits/spend", "body description"), ("PUT", "/api/credits/controls", "body timeZone"),
            ("POST", "/api/auth/login", "body password"), ("GET", "/account/credits/cancel", "query done"),
            ("POST", "/stub/checkout/x%00" + ESCAPE + "/pay", "path session_id")} <= names
    api = Api(backend.url).register()
    before = counts(backend)
    wrong = []
    for method, path, what, body in inputs:
        r = api.request(method, path, json=body) if body is not None else api.request(method, path)
        if r.status_code != 400 or r.json()["error"]["code"] != "invalid_text":
            wrong.append((method, path, what, r.status_code, r.text[:200]))
    assert wrong == []
    assert counts(backend) == before
    log = backend.log_with('" 400')
    assert "pwned" not in log and "%00" not in log and "\x00" not in log and "%1b" not in log
