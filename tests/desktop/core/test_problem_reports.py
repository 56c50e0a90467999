"""Help's configuration and the files of Report a problem, without Qt: the app maker's documentation and support
contact (desktop/core/settings.py), the draft and the reports that could not be sent
(desktop/core/problem_reports.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from desktop.core.problem_reports import load_draft, report_file_text, save_draft, save_unsent
from desktop.core.settings import HelpSettings


def test_the_app_maker_configures_documentation_and_support_contact() -> None:
    configured = HelpSettings.from_env({"CREDITDESK_DOCS_URL": " https://docs.example.com/ ",
                                        "CREDITDESK_SUPPORT_CONTACT": "help@example.com"})
    assert configured == HelpSettings("https://docs.example.com/", "help@example.com")
    assert configured.documentation_url() == "https://docs.example.com/"
    assert configured.support_link == "mailto:help@example.com"
    assert HelpSettings(support_contact="https://example.com/support").support_link == "https://example.com/support"
    assert HelpSettings(support_contact="Call 555-0100").support_link is None  # shown, not opened
    assert HelpSettings.from_env({}).support_link is None
    # A documentation address the browser would hand to another program's handler is not taken.
    assert HelpSettings.from_env({"CREDITDESK_DOCS_URL": "javascript:alert(1)"}).docs_url is None


def test_without_a_documentation_address_there_is_none_to_open() -> None:
    """(The app shows its own user guide then: a README handed to the desktop opened an editor.)"""
    assert HelpSettings().documentation_url() is None
    assert HelpSettings.from_env({"CREDITDESK_DOCS_URL": "  "}).documentation_url() is None


def test_an_unsent_report_keeps_the_words_beside_the_report_and_never_replaces_another(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "support-reports"
    report = {"report_version": 2, "generated_at": "2026-12-05T20:00:00Z"}
    first = save_unsent(folder, "My words", report, "The server is not answering.")
    second = save_unsent(folder, "More words", report, "Too many attempts.")
    assert first != second and first.parent == second.parent == folder
    assert json.loads(first.read_text(encoding="utf-8")) == {
        "message": "My words", "notSentBecause": "The server is not answering.", "report": report}
    assert stat.S_IMODE(first.stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert json.loads(report_file_text("Mine", report)) == {"message": "Mine", "report": report}


def test_the_draft_is_kept_until_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "support-draft.txt"
    assert load_draft(path) == ""
    save_draft(path, "Half a sentence")
    assert load_draft(path) == "Half a sentence"
    save_draft(path, "  \n")
    assert not path.exists() and load_draft(path) == ""
    path.write_bytes(b"\xff\xfe not text")
    assert load_draft(path) == ""
