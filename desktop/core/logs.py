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


# The app's loggers: the Qt layer's ("desktop.*") and the core's ("creditdesk.*"; the backend is never imported
# into the app's process, so these are the app's own).
APP_LOGGERS = ("desktop", "creditdesk")


def setup_logging(log_file: Path, *, level: int = logging.INFO) -> RecentErrors:
    """Log the app's loggers to ``log_file`` (rotating at 1 MB, 3 backups), and nowhere else (not the terminal);
    returns the error keeper."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=1_000_000, backupCount=3,
                                                        encoding="utf-8")
    file_handler.setFormatter(RedactingFormatter(FORMAT))
    recent = RecentErrors()
    ours: tuple[logging.Handler, ...] = (file_handler, recent)
    for mine in ours:
        mine._creditdesk = True  # type: ignore[attr-defined]
    for name in APP_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(handler, "_creditdesk", False):
                logger.removeHandler(handler)
                if handler not in (file_handler, recent):
                    handler.close()
        logger.addHandler(file_handler)
        logger.addHandler(recent)
        logger.setLevel(level)
    return recent
