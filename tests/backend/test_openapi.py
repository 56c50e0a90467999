"""/openapi.json tells a client everything: the bearer scheme, and every status with its error body. Then
schemathesis, from that document alone, fuzzes the real backend: no 5xx, and no status it does not declare.

The document and the statuses are the HTTP layer's, the same on either engine: both run once, on SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import SHARED_ENV
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess

pytestmark = pytest.mark.engines("sqlite")

SIGNED_IN = {("post", "/api/auth/logout"), ("post", "/api/billing/checkout"), ("get", "/api/billing/verify-payment"),
             ("post", "/api/billing/cancel"), ("get", "/api/billing/receipts"), ("get", "/api/billing/details"),
             ("put", "/api/billing/details"),
             ("get", "/api/credits/balance"), ("get", "/api/credits/transactions"), ("post", "/api/credits/spend"),
             ("get", "/api/credits/controls"), ("put", "/api/credits/controls"), ("get", "/api/credits/usage"),
             ("get", "/api/credits/transactions.csv"), ("get", "/api/alerts"), ("post", "/api/alerts/read"),
             ("post", "/api/alerts/test"), ("post", "/api/support/reports"),
             ("post", "/api/credits/holds"), ("get", "/api/credits/holds"),
             ("post", "/api/credits/holds/{hold_id}/settle"), ("post", "/api/credits/holds/{hold_id}/void"),
             ("get", "/api/credits/auto-topup"), ("put", "/api/credits/auto-topup"),
             ("post", "/api/credits/auto-topup/{topup_id}/undo")}
# The contract's statuses, route by route (besides 401 for the signed-in ones, 503 for storage, and 400,
# 413 and 422 for those that take a body).
CONTRACT = {
    ("post", "/api/auth/register"): {201, 409, 429},
    ("post", "/api/auth/login"): {200, 401, 429},
    ("post", "/api/billing/checkout"): {200, 400, 404, 429, 502, 503},
    ("get", "/api/billing/verify-payment"): {200, 404, 429, 502, 503},
    ("post", "/api/billing/cancel"): {200, 404, 502, 503},
    ("post", "/api/credits/spend"): {200, 402, 403, 409, 428},
    ("post", "/api/credits/holds"): {201, 402, 403, 409, 428},
    ("post", "/api/credits/holds/{hold_id}/settle"): {200, 404, 409, 422},
    ("post", "/api/credits/holds/{hold_id}/void"): {200, 404, 409},
    ("get", "/api/credits/usage"): {200, 422},
    # Extensions (auto top-up): a setting that cannot work; Undo of no such top-up, of one not paid or past its
    # 24 hours, or with nothing left; the refund's provider out of reach or refusing.
    ("put", "/api/credits/auto-topup"): {200, 422},
    ("post", "/api/credits/auto-topup/{topup_id}/undo"): {200, 404, 409, 502, 503},
    ("post", "/api/support/reports"): {201, 413, 422, 429},
    ("post", "/api/webhooks/stripe"): {200, 400, 503},
}


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_openapi_declares_the_bearer_scheme_and_every_error(stub_backend: BackendProcess) -> None:
    spec = requests.get(f"{stub_backend.url}/openapi.json", timeout=10).json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's own 422 shape is not ours
    for method, path, op in operations(spec):
        statuses = {int(status) for status in op["responses"]}
        if (method, path) in SIGNED_IN:
            assert op["security"] == [{"bearer": []}] and 401 in statuses, (method, path)
        else:
            assert "security" not in op, (method, path)
        assert CONTRACT.get((method, path), set()) <= statuses, (method, path)
        for status, response in op["responses"].items():
            body = response.get("content", {}).get("application/json", {}).get("schema", {})
            if int(status) >= 400 and body:
                assert body == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
            if int(status) in (429, 503):
                assert "Retry-After" in response["headers"], (method, path, status)


@pytest.mark.subprocess
def test_schemathesis_finds_no_server_error_and_no_undocumented_status(tmp_path: Path) -> None:
    with BackendProcess(tmp_path, SHARED_ENV) as backend:
        api = Api(backend.url).register()  # signed in, so that fuzzing gets past 401 (until it logs out)
        api.checkout("starter")
        st = Path(sys.executable).with_name("st")
        report = tmp_path / "schemathesis.txt"
        with report.open("w") as out:
            r = subprocess.run(
                [str(st), "run", f"{backend.url}/openapi.json",
                 "--checks", "not_a_server_error,status_code_conformance",
                 "--phases", "examples,coverage,fuzzing", "--max-examples", "25", "--seed", "8",
                 "--workers", "1", "--generation-database", "none", "--request-timeout", "30", "--no-color",
                 "--header", f"Authorization: Bearer {api.token}",
                 # logout would end the token for every case after it (tests/backend/test_auth.py covers it)
                 "--exclude-path", "/api/auth/logout"],
                stdout=out, stderr=subprocess.STDOUT, timeout=600, cwd=tmp_path,
                env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            )
        output = report.read_text()
        assert r.returncode == 0, output[-6000:]
        assert " passed" in output and "Authentication failed" not in output, output[-3000:]
        assert "Traceback" not in backend.log()
        assert backend.ledger_problems() == []
