"""Help → Report a problem at the backend: ``POST /api/support/reports`` keeps the user's words and diagnostics
report, redacted, for support to read with ``creditdesk-backend user`` (backend/support_reports.py)."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess

PATH = "/api/support/reports"
# A made-up key of a live key's shape, put together here so that no key-shaped text sits in the repository.
LIVE_SHAPED_KEY = "sk_" + "live_" + "51Habc123"


def diagnostics(**sections: Any) -> dict[str, Any]:
    """A diagnostics report as the app builds it (desktop.core.diagnostics), with some of its sections."""
    return {"report_version": 2, "generated_at": "2026-12-05T20:00:00Z",
            "app": {"version": "0.9.0", "os": "Linux"}, "errors": [], "log": {"file": "/x/creditdesk.log", "tail": []},
            **sections}


def send(api: Api, message: str = "I paid but see no credits.", report: dict[str, Any] | None = None,
         **body: Any) -> Any:
    return api.post(PATH, json={"message": message, "report": report or diagnostics(), **body})


def test_a_report_is_kept_redacted_and_support_sees_it_with_the_user(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    email = api.user["email"]
    words = (f"Paid twice, see below.\nMy email is {email}, my friend's is Bob.Smith@example.org.\n"
             "The log said Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789ABCD and " + LIVE_SHAPED_KEY)
    report = diagnostics(errors=[f"signed in as {email} with token=s3cr3t-t0ken"],
                         account={"email": email, "balance": 40})
    r = send(api, words, report)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert set(answer) == {"reportId", "receivedAt"}
    assert re.fullmatch(r"rep_[0-9a-f]{24}", answer["reportId"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", answer["receivedAt"])

    (row,) = stub_backend.query("SELECT id, user_id, created_at, message, report FROM support_reports "
                                "WHERE id = ?", answer["reportId"])
    assert (row["user_id"], row["created_at"]) == (api.user["id"], answer["receivedAt"])
    stored = row["message"] + row["report"]
    for secret in (email, "Bob.Smith@example.org", "abcdefghijklmnopqrstuvwxyz0123456789ABCD", LIVE_SHAPED_KEY,
                   "s3cr3t-t0ken"):
        assert secret not in stored, secret
    masked = email[0] + "***@example.com"
    assert row["message"].startswith("Paid twice, see below.\nMy email is " + masked)
    assert json.loads(row["report"])["account"] == {"email": masked, "balance": 40}
    assert json.loads(row["report"])["app"] == {"version": "0.9.0", "os": "Linux"}  # kept as sent otherwise

    shown = stub_backend.admin("user", email)
    assert shown.returncode == 0, shown.stderr
    assert answer["reportId"] in shown.stdout and "Paid twice, see below." in shown.stdout
    assert "my friend" not in shown.stdout  # the first line only
    listed = json.loads(stub_backend.admin("user", email, "--json").stdout)["supportReports"]
    assert listed == [{"id": answer["reportId"], "createdAt": answer["receivedAt"],
                       "firstLine": "Paid twice, see below.", "message": row["message"],
                       "report": json.loads(row["report"])}]  # whole, for support to read, as redacted
    log = stub_backend.log_with(answer["reportId"])
    assert answer["reportId"] in log and "Paid twice" not in log and "0.9.0" not in log  # never the contents


def test_reports_are_the_senders_alone(stub_backend: BackendProcess) -> None:
    alice, bob = Api(stub_backend.url).register(), Api(stub_backend.url).register()
    first = send(alice, "First problem").json()["reportId"]
    second = send(alice, "\n\n  Second problem  \nmore").json()["reportId"]
    listed = json.loads(stub_backend.admin("user", alice.user["email"], "--json").stdout)["supportReports"]
    assert [(r["id"], r["firstLine"]) for r in listed] == [(second, "Second problem"), (first, "First problem")]
    assert json.loads(stub_backend.admin("user", bob.user["email"], "--json").stdout)["supportReports"] == []
    assert "(none)" in stub_backend.admin("user", bob.user["email"]).stdout.split("Support reports")[1]


def test_only_a_signed_in_user_may_send_one(stub_backend: BackendProcess) -> None:
    for token in (None, "not-a-token"):
        r = send(Api(stub_backend.url, token))
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", r.text


def test_what_is_not_a_report_is_refused_with_the_fields_named(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    nested: Any = "deep"
    for _ in range(12):
        nested = {"a": nested}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"message": "", "report": diagnostics()}, "message"),
        ({"message": " \n\t ", "report": diagnostics()}, "message"),
        ({"message": "x" * 5001, "report": diagnostics()}, "message"),
        ({"message": 12, "report": diagnostics()}, "message"),
        ({"report": diagnostics()}, "message"),
        ({"message": "Broken"}, "report"),
        ({"message": "Broken", "report": "not an object"}, "report"),
        ({"message": "Broken", "report": {"generated_at": "2026-12-05T20:00:00Z"}}, "report.report_version"),
        ({"message": "Broken", "report": diagnostics(report_version="2")}, "report.report_version"),
        ({"message": "Broken", "report": diagnostics(nested=nested)}, "report"),
        ({"message": "Broken", "report": diagnostics(), "extra": 1}, "extra"),
    ]
    for body, field in cases:
        r = api.post(PATH, json=body)
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_fields" and field in error["message"], (field, error)
    assert api.post(PATH, data=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert stub_backend.query("SELECT COUNT(*) AS n FROM support_reports WHERE user_id = ?",
                              api.user["id"])[0]["n"] == 0


def test_a_report_too_large_is_refused(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    over_the_report_bound = diagnostics(log={"tail": ["x" * 1000] * 300})  # 300 kB: a valid body, too big a report
    r = send(api, report=over_the_report_bound)
    assert r.status_code == 422 and "report" in r.json()["error"]["message"], r.text
    over_the_body_bound = diagnostics(log={"tail": ["x" * 1000] * 1100})  # over the 1 MiB of any body
    r = send(api, report=over_the_body_bound)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", r.text
    assert send(api, report=diagnostics(log={"tail": ["x" * 1000] * 200})).status_code == 201  # 200 kB is fine


def test_five_reports_an_hour_then_429_with_retry_after(stub_backend: BackendProcess) -> None:
    api, other = Api(stub_backend.url).register(), Api(stub_backend.url).register()
    for n in range(5):
        assert send(api, f"Problem {n}").status_code == 201
    r = send(api, "Problem 6")
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert 3000 < int(r.headers["Retry-After"]) <= 3600
    assert send(other, "Mine is another user's count").status_code == 201
    assert len(json.loads(stub_backend.admin("user", api.user["email"], "--json").stdout)["supportReports"]) == 5
