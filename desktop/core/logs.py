"""The app's log: a rotating file in the user's log directory, scrubbed of secrets, and the last errors."""

from __future__ import annotations

import collections
import logging
import logging.handlers
from pathlib import Path

from desktop.core.redact import redact

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then removes anything that looks like a token, key or password."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RecentErrors(logging.Handler):
    """Keeps the last warnings and errors (redacted) for the diagnostics report."""

    def __init__(self, capacity: int = 20) -> None:
        super().__init__(level=logging.WARNING)
        self.records: collections.deque[str] = collections.deque(maxlen=capacity)
        self.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))

    def messages(self) -> list[str]:
        return list(self.records)


def setup_logging(log_file: Path, *, level: int = logging.INFO) -> RecentErrors:
    """Log the ``desktop`` loggers to ``log_file`` (rotating at 1 MB, 3 backups); returns the error keeper."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("desktop")
    for handler in list(root.handlers):
        if getattr(handler, "_creditdesk", False):
            root.removeHandler(handler)
            handler.close()
    file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=1_000_000, backupCount=3,
                                                        encoding="utf-8")
    file_handler.setFormatter(RedactingFormatter(FORMAT))
    recent = RecentErrors()
    for handler in (file_handler, recent):
        handler._creditdesk = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    return recent
