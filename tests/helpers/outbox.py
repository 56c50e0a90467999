"""Reading the mail a backend wrote into its outbox folder (no SMTP server configured), as a developer would."""

from __future__ import annotations

import re
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path


def messages(folder: Path, to: str | None = None) -> list[EmailMessage]:
    """The messages in ``folder`` (to ``to`` only, when given), oldest first."""
    found = []
    for path in sorted(folder.glob("*.eml")) if folder.is_dir() else []:
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        if to is None or parsed["To"] == to:
            found.append(parsed)
    return found


def code_in(message: EmailMessage) -> str:
    """The reset code a message gives, as typed (its 8 digits, without the space in the middle)."""
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(r"^ {4}(\d{4}) (\d{4})\r?$", body.get_content(), re.MULTILINE)
    assert match, body.get_content()
    return match[1] + match[2]


def latest_code(folder: Path, to: str, *, after: int = 0, timeout: float = 5.0) -> str:
    """The code of the newest message to ``to`` once there are more than ``after`` of them."""
    deadline = time.monotonic() + timeout
    while len(found := messages(folder, to)) <= after:
        assert time.monotonic() < deadline, f"no new mail to {to} in {folder}"
        time.sleep(0.02)
    return code_in(found[-1])
