"""The support console (`creditdesk-backend user|adjust|events|replay`) on the cases support gets.

The commands run in the test process (``backend.cli.main``, through ``BackendProcess.admin`` or
tests/helpers/commands.py), beside a real server where the case needs one. What only a real process shows is
proved once, at the end: the console script and ``python -m backend`` exiting 0, 1 and 2, a reader that goes
away, and the question on a real terminal.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from backend import accounts, cli, ledger, migrations
from backend.db import Database, utcnow
from backend.schema import failed_deliveries, webhook_events
from backend.visible import unsafe, visible, visible_json
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.servers import PostgresServer
from tests.helpers.stripe_server import FakeStripe

Stripe = tuple[BackendProcess, FakeStripe]


def one_line_refusal(result: object) -> None:
    assert result.returncode == 2  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert stderr.startswith("creditdesk-backend") and stderr.count("\n") == 1 and "Traceback" not in stderr


def test_i_paid_but_see_no_credits(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("pro")["sessionId"]
    with fake.drop_webhooks():  # the payment went through; its webhook never arrived
        fake.pay(session_id)
    fake.wait_deliveries()

    before = json.loads(backend.admin("user", api.user["email"], "--json").stdout)
    assert before["balance"] == 0
    (order,) = before["orders"]
    assert (order["sessionId"], order["status"], order["creditsGranted"]) == (session_id, "pending", 0)

    assert backend.admin("reconcile").returncode == 0
    text = backend.admin("user", api.user["email"]).stdout
    assert "Balance 1200 credits" in text and order["id"] in text and "checkout.session.completed" in text
    after = json.loads(backend.admin("user", api.user["email"], "--json").stdout)
    assert after["orders"][0]["status"] == "paid" and after["orders"][0]["creditsGranted"] == 1200
    assert [e["source"] for e in after["events"]] == ["reconcile"]


def test_my_refund_failed(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("standard")["sessionId"]
    fake.pay(session_id)
    refund = fake.create_refund(session_id, status="pending").object
    fake.settle_refund(refund["id"], "failed")
    fake.wait_deliveries()
    report = json.loads(backend.admin("user", api.user["email"], "--json").stdout)
    assert report["balance"] == 550 and report["orders"][0]["status"] == "paid"
    assert [e["type"] for e in report["ledger"]] == ["refund_reversal", "refund", "purchase"]
    events = json.loads(backend.admin("events", "--session", session_id, "--json").stdout)["events"]
    outcomes = [e["outcome"] for e in events]
    # Stripe tells of the failure several ways (refund.updated, refund.failed, charge.refund.updated): one
    # of them gave the credits back, whichever came first; the others found nothing left to do.
    assert outcomes.count("given_back") == 1 and outcomes.count("clawed_back") == 1
    assert {e["type"] for e in events} >= {"refund.created", "refund.failed", "checkout.session.completed"}
    failed_only = json.loads(backend.admin("events", "--session", session_id, "--type", "refund.failed", "--json")
                             .stdout)["events"]
    assert [e["type"] for e in failed_only] == ["refund.failed"]


def test_adjust_once_per_key(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    email = api.user["email"]
    first = stub_backend.admin("adjust", email, "250", "--reason", "Goodwill for the outage", "--key", "case-41")
    assert first.returncode == 0 and "balance now 250" in first.stdout
    again = stub_backend.admin("adjust", email, "250", "--reason", "Goodwill for the outage", "--key", "case-41")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert stub_backend.admin("adjust", email, "-50", "--reason", "Taken back: ticket 7",
                              "--public-note", "Correction").returncode == 0
    assert api.balance() == 200
    (taken, given, *_) = api.transactions()
    assert (taken["type"], taken["amount"], taken["description"]) == ("adjustment", -50, "Correction")
    assert (given["amount"], given["description"]) == (250, "Adjustment by support")  # the reason stays support's
    report = json.loads(stub_backend.admin("user", email, "--json").stdout)
    assert [e.get("supportNote") for e in report["ledger"]] == ["Taken back: ticket 7", "Goodwill for the outage"]


@pytest.mark.parametrize("args", [
    ["adjust", "nobody@example.com", "5", "--reason", "x"],
    ["adjust", "{email}", "0", "--reason", "x"],
    ["adjust", "{email}", "1.5", "--reason", "x"],
    ["adjust", "{email}", "lots", "--reason", "x"],
    ["adjust", "{email}", "99999999999", "--reason", "x"],
    ["adjust", "{email}", "\u0661\u0662\u0663", "--reason", "Arabic-Indic digits"],
    ["adjust", "{email}", "\uff11\uff12", "--reason", "fullwidth digits"],
    ["adjust", "{email}", "-5", "--reason", "below zero, asked of nobody"],
    ["adjust", "{email}", "5", "--reason", "   "],
    ["adjust", "{email}", "5"],
    ["user", "nobody@example.com"],
    ["events", "--order", "ord_nope"],
    ["events", "--session", "cs_nope"],
    ["replay", "evt_nope"],
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(stub_backend: BackendProcess, args: list[str]) -> None:
    api = Api(stub_backend.url).register()
    counts = "SELECT (SELECT COUNT(*) FROM ledger_entries) AS e, (SELECT COUNT(*) FROM users) AS u"
    before = stub_backend.query(counts)
    one_line_refusal(stub_backend.admin(*[a.format(email=api.user["email"]) for a in args]))
    assert stub_backend.query(counts) == before


def test_replay_is_a_no_op_where_the_effect_is_already_in_the_ledger(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    event = fake.pay(session_id)
    fake.wait_deliveries()
    r = backend.admin("replay", event["id"])
    assert r.returncode == 0 and "already_granted" in r.stdout
    assert api.balance() == 100
    (stored,) = json.loads(backend.admin("events", "--order", json.loads(
        backend.admin("user", api.user["email"], "--json").stdout)["orders"][0]["id"], "--json").stdout)["events"]
    assert stored["attempts"] == 2 and stored["outcome"] == "already_granted"



# --- in process: the commands' logic without a process per case ----------------------------------------

ESCAPES = "\x1b[2J\x1b]0;pwned\x07 fine\r\nforged | row \u202egnp.exe\x08\x08\x9b2J\u061c"
SHOWN = "\\x1b[2J\\x1b]0;pwned\\x07 fine\\r\\nforged | row \\u202egnp.exe\\x08\\x08\\x9b2J\\u061c"


@pytest.fixture
def console_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    """A migrated database file the commands are pointed at (CREDITDESK_DB), with no Stripe settings."""
    for name in list(os.environ):
        if name.startswith(("CREDITDESK_", "STRIPE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CREDITDESK_DB", str(tmp_path / "backend.sqlite3"))
    db = Database(tmp_path / "backend.sqlite3")
    migrations.upgrade(db)
    yield db
    db.close()


def _user_with_hostile_text(db: Database) -> str:
    user = accounts.register(db, "ann@example.com", "long enough pw")
    with db.transaction() as conn:
        ledger.post(conn, user_id=user.id, type="adjustment", amount=500, reference="adj:seed", description="seed")
        ledger.post(conn, user_id=user.id, type="spend", amount=-7, reference="k1", description=ESCAPES,
                    feature=ESCAPES)
    return user.email


def test_user_text_is_shown_with_its_control_characters_visible(
    console_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    email = _user_with_hostile_text(console_db)
    assert cli.main(["user", email]) == 0
    out = capsys.readouterr().out
    assert not any(unsafe(char) for char in out.replace("\n", ""))
    assert SHOWN in out
    assert not any(line.startswith("forged") for line in out.splitlines())


def test_json_is_exact_and_carries_no_control_character_either(
    console_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON escapes C0 by itself, not C1 (U+009B is a CSI), bidi overrides or separators: those are escaped too,
    as JSON writes any character, so that the values read back are exactly what was stored."""
    email = _user_with_hostile_text(console_db)
    assert cli.main(["user", email, "--json"]) == 0
    out = capsys.readouterr().out
    assert not any(unsafe(char) for char in out.replace("\n", ""))
    assert "\\u009b2J\\u061c" in out
    assert json.loads(out)["ledger"][0]["description"] == ESCAPES


def test_events_show_what_stripe_wrote_visibly(console_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    with console_db.transaction() as conn:
        conn.execute(webhook_events.insert().values(
            id="evt_\x1b]0;x\x07", type="charge.refunded", outcome="ignored", received_at=utcnow(), detail=ESCAPES))
        conn.execute(failed_deliveries.insert().values(
            received_at=utcnow(), signature_valid=True, event_id="evt_2", event_type=ESCAPES, outcome="malformed",
            error=ESCAPES, body="{}"))
    assert cli.main(["events"]) == 0
    out = capsys.readouterr().out
    assert not any(unsafe(char) for char in out.replace("\n", ""))
    assert out.count(SHOWN) == 3 and "evt_\\x1b]0;x\\x07" in out
    assert not any(line.startswith("forged") for line in out.splitlines())


def test_a_usage_error_shows_what_was_typed_visibly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["user", "ann@example.com", "\x1b]0;pwned\x07\x1b[2J"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == "creditdesk-backend: unrecognized arguments: \\x1b]0;pwned\\x07\\x1b[2J (see --help)\n"


def test_visible_leaves_text_alone_and_writes_controls_out() -> None:
    assert visible("Café 東京 — ok") == "Café 東京 — ok"
    assert visible("a\tb\nc\x00d\x7fe\x9bf\u2066g\ufeff") == "a\\tb\\nc\\x00d\\x7fe\\x9bf\\u2066g\\ufeff"
    # backspace, the one-character CSI, the Arabic letter mark, a tag character, separators, a lone surrogate
    assert visible("a\x08b\x9b2Jc\u061cd\U000e0041e\u2028f\u2029g\ud800") == \
        "a\\x08b\\x9b2Jc\\u061cd\\U000e0041e\\u2028f\\u2029g\\ud800"
    kept = "\U0001f642 e\u0301 \u05e9\u05dc\u05d5\u05dd"  # an emoji, a combining accent, Hebrew
    assert visible(kept) == kept
    assert visible(42) == "42"
    value = {"text": ESCAPES + "\U000e0041\x7f", "n": [1, None]}
    shown = visible_json(value)
    assert json.loads(shown) == value and not any(unsafe(char) for char in shown.replace("\n", ""))


def test_a_command_on_a_database_that_is_not_there_refuses_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo" / "backend.sqlite3"
    monkeypatch.setenv("CREDITDESK_DB", str(missing))
    monkeypatch.delenv("CREDITDESK_DATABASE_URL", raising=False)
    for args in (["check"], ["user", "a@example.com"], ["events"], ["replay", "evt_1"],
                 ["adjust", "a@example.com", "5", "--reason", "x"], ["reconcile"]):
        assert cli.main(args) == 2, args
        err = capsys.readouterr().err
        assert f"there is no database at {missing}" in err and err.count("\n") == 1
    assert not missing.exists() and not missing.parent.exists()
    # A bad amount is refused before any database is opened (or migrated).
    assert cli.main(["adjust", "a@example.com", "\uff11\uff12", "--reason", "x"]) == 2
    assert "the amount must be a whole number" in capsys.readouterr().err
    assert cli.main(["migrate"]) == 0 and missing.is_file()  # migrate (and serve) make one
    assert cli.main(["check"]) == 0


def test_a_command_on_a_postgresql_database_without_the_schema_or_not_there_refuses_and_creates_nothing(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith(("CREDITDESK_", "STRIPE_")):
            monkeypatch.delenv(name)
    url = postgres.create_database(migrated=False)
    monkeypatch.setenv("CREDITDESK_DATABASE_URL", url)

    def tables() -> int:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]

    try:
        for args in (["check"], ["user", "a@example.com"], ["events"], ["replay", "evt_1"],
                     ["adjust", "a@example.com", "5", "--reason", "x"], ["reconcile"]):
            assert cli.main(args) == 2, args
            assert capsys.readouterr().err == (
                f"creditdesk-backend: the database {url} is at schema version none and this backend needs "
                f"{migrations.head()}: run `creditdesk-backend migrate`\n")
        assert tables() == 0
        typo = url.rsplit("/", 1)[0] + "/no_such_database"
        monkeypatch.setenv("CREDITDESK_DATABASE_URL", typo)
        assert cli.main(["user", "a@example.com"]) == 2
        assert capsys.readouterr().err == (f"creditdesk-backend: there is no database {typo}: check "
                                           "CREDITDESK_DATABASE_URL (create it, then run `creditdesk-backend "
                                           "migrate`)\n")
        monkeypatch.setenv("CREDITDESK_DATABASE_URL", url)
        assert cli.main(["migrate"]) == 0 and cli.main(["check"]) == 0
    finally:
        postgres.drop_database(url)


def test_adjust_below_zero_asks_on_a_terminal_and_is_refused_without_one(
    console_db: Database, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = accounts.register(console_db, "bob@example.com", "long enough pw")
    assert cli.main(["adjust", user.email, "100", "--reason", "seed"]) == 0
    assert cli.main(["adjust", user.email, "-333", "--reason", "chargeback fee"]) == 2  # no terminal
    err = capsys.readouterr().err
    assert "from 100 to -233, below zero" in err and "--allow-negative" in err and err.count("\n") == 1
    question = "bob@example.com: this takes the balance from 100 to -233, below zero. Go ahead? [y/N] "
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    assert cli.main(["adjust", user.email, "-333", "--reason", "chargeback fee"]) == 2  # said no
    assert capsys.readouterr().err.startswith(question + "creditdesk-backend: not adjusted")  # asked on stderr
    monkeypatch.setattr(sys, "stdin", _Terminal(""))
    assert cli.main(["adjust", user.email, "-333", "--reason", "chargeback fee"]) == 2  # Ctrl-D
    assert capsys.readouterr().err.startswith(question + "\ncreditdesk-backend: not adjusted")
    monkeypatch.setattr(sys, "stdin", _Terminal("yes\n"))
    assert cli.main(["adjust", user.email, "-333", "--reason", "chargeback fee"]) == 0  # said yes
    assert capsys.readouterr().out == "adjusted by -333 credits: entry 2, balance now -233\n"
    assert cli.main(["adjust", user.email, "-1", "--reason", "more", "--allow-negative"]) == 0
    with console_db.read() as conn:
        assert ledger.balance(conn, user.id) == -234


class _Terminal(io.StringIO):
    """Standard input as a terminal whose user types ``answers``."""

    def isatty(self) -> bool:
        return True


MALFORMED = {"id": "evt_m", "type": "checkout.session.completed", "data": {"object": {"id": "cs_x"}}}


@pytest.mark.parametrize("kept_as", ["event", "failed delivery"])
def test_replay_of_an_event_whose_object_is_not_one_is_one_line_exit_2_and_writes_nothing(
    console_db: Database, capsys: pytest.CaptureFixture[str], kept_as: str
) -> None:
    """A body that is an event, but whose session lacks what processing needs (it came from a bad sender, or
    was kept by an older version)."""
    with console_db.transaction() as conn:
        if kept_as == "event":
            conn.execute(webhook_events.insert().values(id="evt_m", type=MALFORMED["type"], outcome="error",
                                                        received_at=utcnow(), body=json.dumps(MALFORMED)))
        else:
            conn.execute(failed_deliveries.insert().values(
                received_at=utcnow(), signature_valid=True, event_id="evt_m", event_type=MALFORMED["type"],
                outcome="error", error="boom", body=json.dumps(MALFORMED)))
    rows = "SELECT id, outcome, attempts, processed_at FROM webhook_events"
    with console_db.read() as conn:
        before = conn.exec_driver_sql(rows).all()
    assert cli.main(["replay", "evt_m"]) == 2
    err = capsys.readouterr().err
    assert err == ("creditdesk-backend: the stored body of evt_m is not an event that can be replayed "
                   "(not a checkout.session object)\n")
    with console_db.read() as conn:
        assert conn.exec_driver_sql(rows).all() == before


def test_replay_of_a_stored_body_that_is_not_an_event_is_one_line_exit_2(
    console_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    with console_db.transaction() as conn:
        conn.execute(failed_deliveries.insert().values(
            received_at=utcnow(), signature_valid=True, event_id="evt_bad", event_type="x", outcome="malformed",
            error="not JSON", body="{not json"))
    assert cli.main(["replay", "evt_bad"]) == 2
    err = capsys.readouterr().err
    assert "not an event that can be replayed" in err and err.count("\n") == 1 and "Traceback" not in err


# --- real processes: what support types, where only a process shows it ---------------------------------


def _command(*args: str, console_script: bool = False) -> list[str]:
    """A command line as support types it: the installed console script, or ``python -m backend``."""
    if console_script:
        return [str(Path(sys.executable).with_name("creditdesk-backend")), *args]
    return [sys.executable, "-m", "backend", *args]


def _console_env(console_db: Database) -> dict[str, str]:
    return {**os.environ, "CREDITDESK_DB": str(console_db.path)}


@pytest.mark.subprocess
def test_the_console_script_and_python_m_backend_exit_0_1_and_2(console_db: Database) -> None:
    """The entry points, and the exit statuses scripts rely on: 0 done, 2 bad input in one line, 1 a fault."""
    email = _user_with_hostile_text(console_db)
    env = _console_env(console_db)
    shown = subprocess.run(_command("user", email, "--json", console_script=True), env=env,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert shown.returncode == 0 and json.loads(shown.stdout)["balance"] == 493 and shown.stderr == ""
    refused = subprocess.run(_command("adjust", "nobody@example.com", "5", "--reason", "x"), env=env,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    one_line_refusal(refused)
    with console_db.transaction() as conn:
        conn.exec_driver_sql("UPDATE balances SET balance = balance + 1")
    fault = subprocess.run(_command("check", console_script=True), env=env, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert fault.returncode == 1 and fault.stdout.endswith("1 problem(s)\n") and fault.stderr == ""


@pytest.mark.subprocess
def test_adjust_below_zero_asks_on_a_real_terminal(console_db: Database) -> None:
    """Standard input a terminal (a pseudo-terminal here): the question on stderr, the answer read from it."""
    import pty

    user = accounts.register(console_db, "bob@example.com", "long enough pw")
    with console_db.transaction() as conn:
        ledger.post(conn, user_id=user.id, type="adjustment", amount=100, reference="adj:seed", description="seed")
    controller, terminal = pty.openpty()
    try:
        os.write(controller, b"y\n")  # typed ahead: the terminal keeps it until the command reads
        answered = subprocess.run(_command("adjust", user.email, "-333", "--reason", "chargeback fee"),
                                  env=_console_env(console_db), stdin=terminal, capture_output=True, text=True,
                                  timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    question = "bob@example.com: this takes the balance from 100 to -233, below zero. Go ahead? [y/N] "
    assert (answered.returncode, answered.stderr) == (0, question)
    assert answered.stdout == "adjusted by -333 credits: entry 2, balance now -233\n"


@pytest.mark.subprocess
def test_a_reader_that_goes_away_ends_the_command_quietly(console_db: Database) -> None:
    """`user ... | head -1`: the reader has read its line and gone, so every write fails with EPIPE (made certain
    here by closing the pipe's read end first: a reader racing the writer might have read everything)."""
    email = _user_with_hostile_text(console_db)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        command = subprocess.run(_command("user", email), stdout=write_end, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, timeout=60, env=_console_env(console_db))
    finally:
        os.close(write_end)
    assert (command.returncode, command.stderr) == (0, b"")
