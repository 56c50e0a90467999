"""Every answer of the API is in /openapi.json, and the real answers are what it says.

The first test reads the document alone: each operation under /api declares a 2xx answer with a real schema (a
closed object, not "anything") or its media type, and the errors its shape can meet. The second serves the
app in this process, walks a user through the API, and checks each real answer against the document with
schemathesis (the status is documented, the media type too, the body validates)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis

from backend.api.app import create_app
from backend.config import Settings
from backend.services import Services
from tests.helpers.api import Api
from tests.helpers.backend import InProcessServer

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
# Not JSON on success: their media type instead, or no body at all.
NOT_JSON = {("get", "/api/credits/transactions.csv"): "text/csv", ("post", "/api/auth/logout"): None}


def spec_of(tmp_path: Path) -> dict[str, Any]:
    services = Services.build(Settings(db_path=tmp_path / "db.sqlite3"), "http://127.0.0.1:9")
    return create_app(services).openapi()


def resolved(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def assert_closed_object(spec: dict[str, Any], schema: dict[str, Any], where: object) -> None:
    """An object that names its fields and takes no others, and so do the objects inside it."""
    found = resolved(spec, schema)
    assert found.get("type") == "object" and found.get("properties"), where
    assert found.get("additionalProperties") is False, where
    for name, field in found["properties"].items():
        for part in (field, field.get("items", {}), *field.get("anyOf", ())):
            if "$ref" in part:
                assert_closed_object(spec, part, (where, name))


def test_every_api_operation_documents_its_answer_and_its_errors(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    api = [(method, path, op) for path, ops in spec["paths"].items() if path.startswith("/api/")
           for method, op in ops.items()]
    assert len(api) >= 20
    for method, path, op in api:
        where = (method, path)
        responses = {int(status): response for status, response in op["responses"].items()}
        successes = [status for status in responses if 200 <= status < 300]
        assert len(successes) == 1, where
        success = responses[successes[0]]
        if where in NOT_JSON:
            media_type = NOT_JSON[where]
            assert list(success.get("content", {})) == ([media_type] if media_type else []), where
        else:
            assert list(success["content"]) == ["application/json"], where
            assert_closed_object(spec, success["content"]["application/json"]["schema"], where)

        # The errors its shape can meet: the bearer token, the storage behind it, the body, the query.
        errors = {status for status in responses if status >= 400}
        needed = set()
        if op.get("security"):
            needed |= {401, 503}
        if "requestBody" in op:
            needed |= {400, 413, 422}
        if any(parameter["in"] == "query" for parameter in op.get("parameters", ())):
            needed |= {400, 422}
        assert needed <= errors, (where, needed - errors)
        if path != "/api/webhooks/stripe":  # the one route that reads its body as bytes, NUL and all
            assert "`invalid_text`" in responses[400]["description"], where
        for status in errors:
            assert responses[status]["content"] == {"application/json": {"schema": ERROR_BODY}}, (where, status)
            if status in (429, 503):
                assert "Retry-After" in responses[status]["headers"], (where, status)


def test_the_pages_and_redirects_say_what_they_answer(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if path.startswith("/api/"):
                continue
            for status, response in op["responses"].items():
                if status == "303":
                    assert "content" not in response and "Location" in response["headers"], (method, path)
                elif status in ("400", "422"):  # refused before the page, in JSON
                    assert response["content"] == {"application/json": {"schema": ERROR_BODY}}, (method, path)
                else:
                    assert set(response["content"]) <= {"text/html", "application/json"}, (method, path, status)
                    assert "text/html" in response["content"] or status == "503", (method, path, status)


class Conformance:
    """Real answers against the app's own /openapi.json, through schemathesis."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.schema = schemathesis.openapi.from_dict(copy.deepcopy(spec))
        self.seen: set[tuple[str, str, int]] = set()

    def check(self, method: str, path: str, response: requests.Response) -> requests.Response:
        documented = self.spec["paths"][path][method]["responses"]
        status = str(response.status_code)
        assert status in documented, (method, path, status, response.text[:300])
        media_types = list(documented[status].get("content", {}))
        got = response.headers.get("content-type", "").split(";")[0].strip()
        assert (got in media_types) if media_types else not response.content, (method, path, status, got)
        self.schema[path][method.upper()].validate_response(response)  # raises when the body does not validate
        self.seen.add((method, path, response.status_code))
        return response

    def valid(self, method: str, path: str, response: requests.Response) -> bool:
        return bool(self.schema[path][method.upper()].is_valid_response(response))


@pytest.fixture
def served(tmp_path: Path) -> Any:
    services = Services.build(Settings(db_path=tmp_path / "db.sqlite3"), "http://127.0.0.1:9")
    app = create_app(services)
    with InProcessServer(app) as server:
        yield server.url, Conformance(app.openapi())


def test_real_answers_validate_against_the_documented_schemas(served: Any) -> None:
    url, conformance = served
    check = conformance.check
    for path in ("/api/health", "/api/health/live", "/api/health/ready", "/api/billing/packs"):
        check("get", path, requests.get(url + path, timeout=10))

    email = "answers@example.com"
    registered = check("post", "/api/auth/register", requests.post(
        url + "/api/auth/register", json={"email": email, "password": "correct horse battery"}, timeout=10))
    api = Api(url, registered.json()["token"])
    check("post", "/api/auth/login", api.post("/api/auth/login", json={"email": email, "password": "wrong one!"}))
    check("post", "/api/auth/login", api.post("/api/auth/login",
                                              json={"email": email, "password": "correct horse battery"}))

    # A purchase, paid on the stub's page: its entry carries orderId and payment, and it makes an alert.
    checkout = check("post", "/api/billing/checkout", api.post("/api/billing/checkout", json={"packId": "pro"}))
    session_id = checkout.json()["sessionId"]
    paid = api.post(f"/stub/checkout/{session_id}/pay", allow_redirects=False)
    check("post", "/stub/checkout/{session_id}/pay", paid)
    check("get", "/api/billing/verify-payment", api.get("/api/billing/verify-payment",
                                                         params={"session_id": session_id}))
    check("post", "/api/billing/checkout", api.post("/api/billing/checkout", json={"packId": "nope"}))
    unpaid = api.checkout("starter")["sessionId"]
    check("post", "/api/billing/cancel", api.post("/api/billing/cancel", json={"sessionId": unpaid}))

    # Spends under eleven descriptions (the usage breakdown's last row sums the rest), then the refusals.
    for n in range(11):
        spent = check("post", "/api/credits/spend", api.post(
            "/api/credits/spend", json={"amount": n + 1, "idempotencyKey": f"k{n}", "description": f"task {n}"}))
    answer = spent.json()
    broken = requests.Response()
    broken.status_code, broken.headers["Content-Type"] = 200, "application/json"
    broken._content = b'{"transactionId": %d}' % answer["transactionId"]  # the validation bites: no balance
    assert not conformance.valid("post", "/api/credits/spend", broken)
    check("post", "/api/credits/spend", api.post("/api/credits/spend",
                                                 json={"amount": 10**9, "idempotencyKey": "too-much"}))
    controls = {"caps": {"day": 100}, "confirmAbove": 50, "lowBalanceAlerts": [1000], "timeZone": "Europe/Paris"}
    check("put", "/api/credits/controls", api.request("PUT", "/api/credits/controls", json=controls))
    check("get", "/api/credits/controls", api.get("/api/credits/controls"))
    for key, amount in (("confirm", 60), ("cap", 45)):
        refused = check("post", "/api/credits/spend", api.post("/api/credits/spend",
                                                               json={"amount": amount, "idempotencyKey": key}))
        assert refused.status_code in (403, 428), refused.text

    check("get", "/api/credits/balance", api.get("/api/credits/balance"))
    history = check("get", "/api/credits/transactions", api.get("/api/credits/transactions", params={"limit": 5}))
    check("get", "/api/credits/transactions", api.get("/api/credits/transactions",
                                                      params={"before": history.json()["nextCursor"]}))
    usage = check("get", "/api/credits/usage", api.get("/api/credits/usage"))
    assert usage.json()["byDescription"][-1].get("rest") is True
    check("get", "/api/credits/usage", api.get("/api/credits/usage", params={"from": "2026-02-01", "to": "2026-01-01"}))
    check("get", "/api/credits/transactions.csv", api.get("/api/credits/transactions.csv"))

    check("post", "/api/alerts/test", api.post("/api/alerts/test"))
    alerts = check("get", "/api/alerts", api.get("/api/alerts")).json()
    assert {"purchase_confirmed", "test"} <= {alert["kind"] for alert in alerts["alerts"]}
    check("post", "/api/alerts/read", api.post("/api/alerts/read", json={"all": True}))
    check("post", "/api/webhooks/stripe", api.post("/api/webhooks/stripe", data=b"{}"))  # stub: not configured

    check("post", "/api/auth/logout", api.post("/api/auth/logout"))
    check("get", "/api/credits/balance", api.get("/api/credits/balance"))  # 401 now
    assert {status for _, _, status in conformance.seen} >= {200, 201, 204, 303, 400, 401, 402, 404, 422}
