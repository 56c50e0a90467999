"""The app's log: a rotating file in the user's log directory, scrubbed of secrets, and the last errors.

The app opens the file after its window's first paint (:func:`open_log_file`; ``logging.handlers`` loads
then): what is logged before waits in memory and is written first.
"""

from __future__ import annotations

import collections
import copy
import logging
from pathlib import Path

from resources.redaction import redact

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


class HeldRecords(logging.Handler):
    """The records logged before the file is opened, to be written when it is."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        held = copy.copy(record)  # its message as it is now, as logging's QueueHandler keeps it
        held.msg, held.args = record.getMessage(), None
        self.records.append(held)


# The app's loggers: the Qt layer's ("desktop.*") and the core's ("creditdesk.*"; the backend is never imported
# into the app's process, so these are the app's own).
APP_LOGGERS = ("desktop", "creditdesk")


def setup_logging(log_file: Path, *, level: int = logging.INFO, open_file: bool = True) -> RecentErrors:
    """Log the app's loggers to ``log_file`` (rotating at 1 MB, 3 backups), and nowhere else (not the terminal);
    returns the error keeper. With ``open_file=False`` the records wait until :func:`open_log_file`."""
    recent = RecentErrors()
    _install(_file_handler(log_file) if open_file else HeldRecords(), recent, level=level)
    return recent


def open_log_file(log_file: Path) -> None:
    """Open the file that ``setup_logging(..., open_file=False)`` held back and write what waited for it."""
    held = next((h for h in logging.getLogger(APP_LOGGERS[0]).handlers if isinstance(h, HeldRecords)), None)
    if held is None:
        return
    file_handler = _file_handler(log_file)
    _install(file_handler, *(h for h in logging.getLogger(APP_LOGGERS[0]).handlers if h is not held
                             and getattr(h, "_creditdesk", False)))
    for record in held.records:
        file_handler.handle(record)
    held.records.clear()


def _file_handler(log_file: Path) -> logging.Handler:
    import logging.handlers

    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=1_000_000, backupCount=3,
                                                        encoding="utf-8")
    file_handler.setFormatter(RedactingFormatter(FORMAT))
    return file_handler


def _install(*ours: logging.Handler, level: int | None = None) -> None:
    """``ours`` become the app's handlers (those of an earlier set-up are removed, and closed if not reused)."""
    for mine in ours:
        mine._creditdesk = True  # type: ignore[attr-defined]
    for name in APP_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(handler, "_creditdesk", False):
                logger.removeHandler(handler)
                if handler not in ours:
                    handler.close()
        for mine in ours:
            logger.addHandler(mine)
        if level is not None:
            logger.setLevel(level)
