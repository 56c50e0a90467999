"""The server's log: written by a thread of its own, every line whole and none lost when the server stops."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) [\w.]+: .+$")


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60,
                          check=True)


@pytest.mark.subprocess
def test_lines_from_many_threads_are_whole_and_all_written_when_the_process_ends() -> None:
    result = run("""
        import logging, threading
        from backend import logs
        logs.configure(logging.INFO, in_background=True)
        log = logging.getLogger("creditdesk.payments")
        def write(n):
            for i in range(250):
                log.info("payment thread=%d line=%d outcome=granted", n, i)
        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        log.warning("the last line, just before exit")
    """)
    lines = result.stderr.splitlines()
    assert len(lines) == 8 * 250 + 1 and all(LINE.match(line) for line in lines)
    for n in range(8):  # each thread's lines in the order it wrote them
        mine = [int(line.rsplit("line=", 1)[1].split()[0]) for line in lines if f"thread={n} " in line]
        assert mine == list(range(250))
    assert lines[-1].endswith("WARNING creditdesk.payments: the last line, just before exit")


@pytest.mark.subprocess
def test_an_error_keeps_its_traceback_and_levels_below_the_setting_are_dropped() -> None:
    result = run("""
        import logging
        from backend import logs
        logs.configure(logging.INFO, in_background=True)
        logging.getLogger("creditdesk").debug("not shown")
        logging.getLogger("alembic").info("not shown either: migrations say what changed themselves")
        try:
            {}["missing"]
        except KeyError:
            logging.getLogger("creditdesk").exception("unexpected error on %s %s", "POST", "/api/credits/spend")
    """)
    assert "not shown" not in result.stderr
    assert "ERROR creditdesk: unexpected error on POST /api/credits/spend\nTraceback" in result.stderr
    assert result.stderr.rstrip().endswith("KeyError: 'missing'")


@pytest.mark.subprocess
def test_the_admin_commands_write_at_once_and_only_trouble() -> None:
    result = run("""
        import logging, sys
        from backend import logs
        logs.configure(logging.WARNING, in_background=False)
        logging.getLogger("creditdesk").info("not shown")
        logging.getLogger("creditdesk").warning("written before the next line of stdout")
        sys.stderr.flush()
        print("done", flush=True)
    """)
    assert result.stderr.splitlines()[-1].endswith("WARNING creditdesk: written before the next line of stdout")
    assert "not shown" not in result.stderr and result.stdout == "done\n"


@pytest.mark.subprocess
def test_a_last_word_comes_after_every_line_logged_before_it_and_later_lines_still_show() -> None:
    result = run("""
        import logging
        from backend import logs
        from backend.cli import say
        logs.configure(logging.INFO, in_background=True)
        for i in range(300):
            logging.getLogger("creditdesk").error("storage outcome=unavailable reason=disk full %d", i)
        say("creditdesk-backend: cannot open the database: disk full.")
        logging.getLogger("creditdesk").warning("after the last word")
    """)
    lines = result.stderr.splitlines()
    assert len(lines) == 302 and lines[-2] == "creditdesk-backend: cannot open the database: disk full."
    assert lines[-1].endswith("WARNING creditdesk: after the last word")


@pytest.mark.subprocess
def test_what_a_user_or_stripe_wrote_in_a_line_cannot_move_the_cursor_or_forge_a_line() -> None:
    """A dispute status or an error's text from Stripe, an id from a request: written out as backend.visible does
    for the admin commands' own output. A traceback stays as it is."""
    result = run(r"""
        import logging
        from backend import logs
        logs.configure(logging.WARNING, in_background=False)
        log = logging.getLogger("creditdesk.payments")
        log.warning("payment dispute=%s status=%s", "dp_1", "won\x1b]0;pwned\x07\r\n2026-12-05 ERROR forged\u202e")
        try:
            {}["missing"]
        except KeyError:
            log.exception("unexpected error on %s", "evt_\x9b2J")
    """)
    lines = result.stderr.splitlines()
    assert lines[0].endswith(r"payment dispute=dp_1 status=won\x1b]0;pwned\x07\r\n2026-12-05 ERROR forged\u202e")
    assert lines[1].endswith(r"ERROR creditdesk.payments: unexpected error on evt_\x9b2J") and lines[2] == (
        "Traceback (most recent call last):")
    assert all(LINE.match(line) for line in lines[:2]) and "\x1b" not in result.stderr
