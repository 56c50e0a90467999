"""Help → Report a problem, without Qt: the draft of the user's words, and the file a report goes to when it could
not be sent (or when the user saves it), so that their words are never lost.

Every function here touches the disk: call them on the disk worker from the GUI.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from desktop.core._files import atomic_write_text

log = logging.getLogger("creditdesk.problem_reports")


def report_file_text(message: str, report: dict[str, Any], *, not_sent_because: str | None = None) -> str:
    """A report as a file for support: the user's words, why it was not sent (when it was not), the report."""
    content: dict[str, Any] = {"message": message}
    if not_sent_because:
        content["notSentBecause"] = not_sent_because
    content["report"] = report
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


def save_unsent(folder: Path, message: str, report: dict[str, Any], reason: str) -> Path:
    """Keep a report that could not be sent in ``folder`` (made if need be, private to the user); returns its path.
    Never replaces an earlier one."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"creditdesk-report-{stamp}.json"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"creditdesk-report-{stamp}-{n}.json"
    atomic_write_text(path, report_file_text(message, report, not_sent_because=reason))
    log.info("a support report that was not sent is saved in %s", path)  # the path, never the words
    return path


def load_draft(path: Path) -> str:
    """The words typed last time and not sent; "" when there are none (or they cannot be read)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read the support report's draft %s (%s)", path, type(exc).__name__)
        return ""


def save_draft(path: Path, text: str) -> None:
    """Keep the words typed (an empty text removes the draft)."""
    if text.strip():
        atomic_write_text(path, text)
    else:
        path.unlink(missing_ok=True)
