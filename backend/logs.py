"""The backend's log: one line a record on stderr, written by a thread of its own while serving.

A server's request threads hand their records to a queue and a listener thread formats and writes them
(the standard library's QueueHandler and QueueListener). So a thread answering a webhook never waits on the
stream, or on another thread's write to it: with every thread writing to stderr itself, the two lines a
granted payment logs cost more than all the statements that grant it (``bench/webhooks.py`` measured
that). The admin commands log only trouble, and write it at once.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys

from backend.visible import visible

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# CREDITDESK_LOG_FORMAT=json: one JSON object a line, for a log collector; ``requestId`` is the request's
# X-Request-ID where the record was made while answering one (added by serve's filter, see add_filter).
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s"
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger", "correlation_id": "requestId"}
LOG_FORMATS = ("text", "json")

_listener: logging.handlers.QueueListener | None = None


def configure(level: int, *, in_background: bool, log_format: str = "text") -> None:
    """Send every logger's records at ``level`` and above to stderr; ``in_background``: through the queue
    and its thread (drained at exit, so that no line is lost when the server stops). ``log_format`` is
    ``text`` or ``json``."""
    global _listener
    root = logging.getLogger()
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # we say what changed ourselves
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactNul) for f in access.filters):
        access.addFilter(RedactNul())
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(_formatter(log_format))
    if not in_background:
        root.addHandler(stream)
        return
    # What a record costs its thread, once the line is written elsewhere: the logging HOWTO's "Optimization"
    # settings for what FORMAT does not show (the caller's file and line, thread and process names).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    root.addHandler(_Enqueue(records))
    _listener = logging.handlers.QueueListener(records, stream, respect_handler_level=True)
    _listener.start()
    atexit.register(stop)


class RedactNul(logging.Filter):
    """The access log line of a request refused for holding NUL says how long its path and query were, not
    what they held (an attacker's bytes in support's log are a way in: escape sequences, forged lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            full_path = args[2]
            if "%00" in full_path.lower() or "\x00" in full_path:
                path, _, query = full_path.partition("?")
                unsafe = "%00" in path.lower() or "\x00" in path
                shown = f"[a path of {len(path)} characters]" if unsafe else path
                if query:
                    shown += f"?[a query of {len(query)} characters, refused]"
                record.args = (args[0], args[1], shown, args[3], args[4])
        return True


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        from pythonjsonlogger.core import RESERVED_ATTRS
        from pythonjsonlogger.json import JsonFormatter

        # uvicorn's color_message repeats the message with terminal colours: not for a collector.
        return JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES, reserved_attrs=[*RESERVED_ATTRS, "color_message"])
    return _VisibleFormatter(FORMAT)


class _VisibleFormatter(logging.Formatter):
    """One line a record: what a user or Stripe wrote in a message (an id, a status, an error's text) has its
    control characters written out (backend.visible), so that it cannot move the cursor on a terminal or forge
    a line of the log. A traceback, added after the message, is left as it is."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return visible(super().formatMessage(record))


def add_filter(log_filter: logging.Filter) -> None:
    """Run ``log_filter`` on every record in the thread that makes it (where a request's context is), before
    the record is queued: the request id filter of ``serve``."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(log_filter)


class _Enqueue(logging.handlers.QueueHandler):
    """Hands the record over as it is: the listener formats it. (The stdlib's QueueHandler formats it first,
    so that it could cross to another process; this queue stays in the process.)"""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def stop() -> None:
    """Write what is queued, stop the thread, and write any later record at once: at exit, or before a last
    word on stderr that has to come after the lines before it. Safe to call twice."""
    global _listener
    listener, _listener = _listener, None
    if listener is None:
        return
    listener.stop()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _Enqueue):
            root.removeHandler(handler)
    for handler in listener.handlers:
        root.addHandler(handler)
