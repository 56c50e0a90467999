"""The diagnostics report: what it says, and that no secret gets into it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from desktop.core.api import ApiClient
from desktop.core.diagnostics import build_report, mask_email, redact, render_text, report_json
from desktop.core.purchase_records import PurchaseRecord, PurchaseRecords
from desktop.core.settings import AppPaths
from desktop.core.tokens import TokenStore
from tests.desktop.core.conftest import PASSWORD, unique_email
from tests.helpers.backend import BackendProcess

SK = "sk_test_51HxYzAbCdEfGhIjKlMnOpQrStUvWx"
# Made-up values in the shape of a live restricted key and a webhook secret, put together at run time so
# that secret scanners reading the source do not take them for real ones.
RK = "rk_" + "live_51AbCdEf0123456789"
WHSEC = "whsec_" + "AbCdEf0123456789ghIJKLmnop"
PASSWORD_IN_LOG = "Tr0ub4dor&3-horse"


def test_report_without_secrets(stub_backend: BackendProcess, tmp_path: Path, memory_keyring: Any) -> None:
    paths = AppPaths.under(tmp_path).ensure()
    email = unique_email()
    api = ApiClient(stub_backend.url)
    token = api.register(email, PASSWORD).token
    tokens = TokenStore()
    tokens.save(stub_backend.url, email, token)
    purchase_records = PurchaseRecords(paths.purchase_records_file)
    session = api.checkout("starter")
    purchase_records.add(PurchaseRecord(stub_backend.url, email, session.session_id, "starter", "Starter", 100))
    purchase_records.add(PurchaseRecord(stub_backend.url, email, "cs_old", "pro", "Pro", 1200, "2020-01-01T00:00:00Z",
                                "paid"))
    paths.log_file.write_text("\n".join([
        *(f"filler line {n}" for n in range(100)),
        f"GET /api/credits/balance Authorization: Bearer {token}",
        f"headers {{'Authorization': 'Bearer {token}'}}",
        f"retrying with bearer {token}",
        f"config STRIPE_SECRET_KEY={SK} restricted {RK}",
        f"webhook secret {WHSEC}",
        f'login body {{"email": "{email}", "password": "{PASSWORD_IN_LOG}"}}',
        f"login form password={PASSWORD}&email=x",
        f"a bare token {token} in the middle",
        "the last line",
    ]) + "\n")
    errors = [f"Request failed: 401 with token {token}", f"Stripe said: Invalid API Key provided: {SK}"]

    report = build_report(
        backend_url=stub_backend.url, bundled=False, account_email=email, token=token, token_store=tokens,
        paths=paths, purchase_records=purchase_records, errors=errors,
    )
    text = report_json(report)
    for secret in (token, SK, RK, WHSEC, PASSWORD_IN_LOG, PASSWORD, "hunter2"):
        assert secret not in text, secret
    assert email not in text
    assert json.loads(text) == report

    assert report["app"]["version"] == "0.1.0"
    assert report["app"]["qt"][0].isdigit()
    assert report["app"]["python"].endswith(sys.version.split()[0])
    assert report["app"]["os"]
    backend = report["backend"]
    assert backend["reachable"] is True and backend["payments"] == "stub" and backend["version"]
    assert backend["latency_ms"] >= 0 and backend["url"] == stub_backend.url and backend["error"] is None
    assert report["account"] == {"signed_in": True, "email": mask_email(email), "balance": 0, "ledger": [],
                                 "error": None}
    assert report["account"]["email"].startswith("d***@")
    assert report["keyring"]["persistent"] is True
    assert report["paths"] == {"data": str(paths.data_dir), "config": str(paths.config_dir),
                               "log": str(paths.log_dir)}
    assert [p["session_id"] for p in report["purchases"]] == [session.session_id, "cs_old"]
    assert report["purchases"][0]["at_backend"] == {"status": "pending", "credits_granted": 0}
    assert report["purchases"][1]["finished_at"] and report["purchases"][1]["pack"] == "Pro"
    assert "error" in report["purchases"][1]["at_backend"]  # the backend does not know cs_old
    text = render_text(report)
    assert "\nPurchases (newest first)\n" in text and "at the backend now: pending (0 credits granted)" in text
    for secret in (token, SK, RK, WHSEC, PASSWORD_IN_LOG, PASSWORD, email):
        assert secret not in text, secret
    tail = report["log"]["tail"]
    assert len(tail) == 50 and tail[-1] == "the last line"
    assert any("Authorization: [REDACTED]" in line for line in tail)
    assert len(report["errors"]) == 2 and "[REDACTED]" in report["errors"][0]


@pytest.mark.subprocess
def test_report_for_an_unreachable_backend(tmp_path: Path, no_keyring: Any) -> None:
    report = build_report(backend_url="http://127.0.0.1:9", token_store=TokenStore(),
                          paths=AppPaths.under(tmp_path), health_timeout=1)
    assert report["backend"]["reachable"] is False
    assert "not answering" in report["backend"]["error"]
    assert report["account"]["signed_in"] is False and report["account"]["email"] is None
    assert report["keyring"]["persistent"] is False
    assert "keyring.backends.fail.Keyring" in report["keyring"]["backend"]
    assert report["log"]["tail"] == []  # no log file yet
    assert report["purchases"] == []


def test_report_without_a_backend() -> None:
    report = build_report(backend_url=None)
    assert report["backend"]["reachable"] is False and report["backend"]["url"] is None
    json.loads(report_json(report))


def test_redact() -> None:
    token = "kVx3Jq9bT1m2Z_pQ8rS7uV6wX5yA4bC3dE2fG1hI0jK"
    assert redact(f"Authorization: Bearer {token}") == "Authorization: [REDACTED]"
    assert token not in redact(f"token {token}")
    assert redact("key sk_test_abcdef123456 here") == "key [REDACTED] here"
    assert redact("whsec_abc123XYZ") == "[REDACTED]"
    assert redact('{"password": "two words"}') == '{"password": "[REDACTED]"}'
    assert redact("password=secret1&next=1") == "password=[REDACTED]&next=1"
    assert redact("http://user:pw@example.com/x") == "http://[REDACTED]@example.com/x"
    assert redact("GET /callback?session_id=cs_1&state=abc") == "GET /callback?session_id=cs_1&state=[REDACTED]"
    # What support needs stays readable.
    sid = "cs_stub_Gk3m9Qx7LpA2vB8nC4dE6fH1jK5"
    assert redact(f"verify {sid} -> paid") == f"verify {sid} -> paid"
    assert redact("/home/user/.local/share/creditdesk/backend.sqlite3") == (
        "/home/user/.local/share/creditdesk/backend.sqlite3")
    assert redact("Creditdesk backend listening on http://127.0.0.1:8787 (payments: stub)") == (
        "Creditdesk backend listening on http://127.0.0.1:8787 (payments: stub)")
    assert redact("john.doe@example.com failed") == "j***@example.com failed"


def test_emails_are_masked_whatever_their_letters() -> None:
    for email, masked in (("jürgen.müller@bücher.de", "j***@bücher.de"), ("用户@例子.中国", "用***@例子.中国"),
                          ("élodie+credits@exemple.fr", "é***@exemple.fr"),
                          ("Ωμέγα@παράδειγμα.ελ", "Ω***@παράδειγμα.ελ"),
                          ("o'brien@xn--bcher-kva.example", "o***@xn--bcher-kva.example")):
        assert mask_email(email) == masked
        assert redact(f"signed in as {email}.") == f"signed in as {masked}."
        assert redact(f'{{"email": "{email}"}}') == f'{{"email": "{masked}"}}'
    assert render_text(build_report(backend_url=None, signed_out_email="jürgen@bücher.de")).count("bücher") == 1
    assert "jürgen" not in render_text(build_report(backend_url=None, signed_out_email="jürgen@bücher.de"))


def test_mask_email() -> None:
    assert mask_email("jane@example.com") == "j***@example.com"
    assert mask_email(None) is None
    assert mask_email("nonsense") == "***"


@pytest.mark.subprocess
def test_qt_version_is_read_without_importing_qt() -> None:
    code = (
        "import sys\nfrom desktop.core.diagnostics import build_report\n"
        "r = build_report(backend_url=None)\n"
        "print(r['app']['qt'], 'PySide6' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    version, imported = out.stdout.split()
    assert version[0].isdigit() and imported == "False"


def test_prices_in_the_report_are_stripes_amounts() -> None:
    """500 JPY is 500 yen (it once said "5.00 JPY"), and 500 ISK in Stripe's minor unit is 5 krónur."""
    report: dict[str, Any] = {"purchases": [
        {"pack": "Yen", "credits": 7, "price": {"amount": 503, "currency": "jpy"}, "session_id": "cs_1"},
        {"pack": "Krona", "credits": 7, "price": {"amount": 500, "currency": "isk"}, "session_id": "cs_2"},
        {"pack": "Dinar", "credits": 7, "price": {"amount": 5130, "currency": "kwd"}, "session_id": "cs_3"},
    ]}
    text = render_text(report)
    assert "Yen pack, 7 credits, 503 JPY" in text
    assert "Krona pack, 7 credits, 5 ISK" in text
    assert "Dinar pack, 7 credits, 5.130 KWD" in text


def test_the_readable_report_writes_money_with_the_writer_it_is_given() -> None:
    """The app passes its own formatter (desktop/qt/formatting.money), so Diagnostics writes "$25.00" as the app
    does; without one the amounts stay locale-free."""
    report: dict[str, Any] = {"purchases": [
        {"pack": "Standard", "credits": 550, "price": {"amount": 2500, "currency": "usd"}, "session_id": "cs_1"}]}
    assert "Standard pack, 550 credits, 25.00 USD" in render_text(report)
    assert "Standard pack, 550 credits, [2500 usd]" in render_text(report, lambda amount, currency:
                                                                    f"[{amount} {currency}]")
