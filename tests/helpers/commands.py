"""``creditdesk-backend`` admin commands run in the test process: :func:`backend.cli.main` (what the console
script and ``python -m backend`` call) with the arguments, environment and standard streams a command line
would give it, and its exit status and output captured as :class:`subprocess.CompletedProcess` has them.

A command started as a process costs a Python start and the backend's imports (about a second each, several on
a busy machine) and proves nothing more about a command's logic: the few tests about the wiring itself (the
entry point, exit statuses from a real process, a reader that goes away, a prompt on a real terminal) start
real processes, in ``tests/backend/test_console.py``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from backend import prepared


@dataclass(frozen=True)
class CommandResult:
    """What a command left: its exit status and what it wrote on stdout and stderr."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


# One command at a time: the environment and the standard streams belong to the whole process.
_ONE_AT_A_TIME = threading.Lock()


def run_command(args: list[str], env: Mapping[str, str]) -> CommandResult:
    """``creditdesk-backend ARGS`` in this process, with ``env`` as its whole environment and an empty stdin
    that is not a terminal (as ``stdin=DEVNULL`` gives a process). An exception the command does not turn
    into an exit status propagates: a process would have printed it as a traceback."""
    from backend import cli  # at the first command, not when the suite's conftest imports this

    out, err = io.StringIO(), io.StringIO()
    with _ONE_AT_A_TIME, _environment(env), _command_line_state():
        saved_stdin = sys.stdin
        sys.stdin = io.StringIO("")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    status = cli.main(list(args))
                except SystemExit as exited:  # argparse: a usage error, --help, --version
                    status = _exit_status(exited, err)
        finally:
            sys.stdin = saved_stdin
    return CommandResult(list(args), status, out.getvalue(), err.getvalue())


def _exit_status(exited: SystemExit, stderr: io.StringIO) -> int:
    """The status a process would exit with (``sys.exit`` prints a message that is not a number)."""
    if exited.code is None:
        return 0
    if isinstance(exited.code, int):
        return exited.code
    print(exited.code, file=stderr)
    return 1


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` is ``env`` for the duration; only the names that differ are touched, so that other threads
    (a Stripe-compatible server delivering webhooks) never see an empty environment."""
    differ = {name for name in os.environ.keys() | env.keys() if os.environ.get(name) != env.get(name)}
    saved = {name: os.environ.get(name) for name in differ}
    try:
        for name in differ:
            if name in env:
                os.environ[name] = env[name]
            else:
                del os.environ[name]
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def root_logger_restored() -> Iterator[None]:
    """Put the root logger, and the app's and backend's own (``creditdesk``, ``desktop``), back as they were: a
    command line sets its own handler on the stderr of the moment (pytest's capture, closed after the test), and
    the app's log set-up gives ``creditdesk`` a level of INFO, which would let a later command's INFO lines
    through to its stderr."""
    loggers = [logging.getLogger(name) for name in ("", "creditdesk", "desktop")]
    saved = [(list(logger.handlers), logger.level) for logger in loggers]
    try:
        yield
    finally:
        for logger, (handlers, level) in zip(loggers, saved, strict=True):
            for handler in list(logger.handlers):
                if handler not in handlers:
                    logger.removeHandler(handler)
            for handler in handlers:
                if handler not in logger.handlers:
                    logger.addHandler(handler)
            logger.setLevel(level)


@contextlib.contextmanager
def _command_line_state() -> Iterator[None]:
    """Put back what a command sets for the whole process: the root logger and whether hot statements are
    prepared."""
    was_prepared = prepared.enabled()
    try:
        with root_logger_restored():
            yield
    finally:
        prepared.set_enabled(was_prepared)
