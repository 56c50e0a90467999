"""``creditdesk-backend`` (and ``python -m backend``): serve, and admin commands."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NoReturn

from sqlalchemy.exc import SQLAlchemyError

from backend import __version__, logs, orders
from backend.config import ConfigError, Settings
from backend.db import iso_utc
from backend.errors import (
    CreditdeskError,
    InvalidAdjustment,
    InvalidSince,
    NoDatabase,
    UnknownEvent,
    UnknownOrder,
    UnknownUser,
)
from backend.migrations import MigrationError
from backend.visible import visible

if TYPE_CHECKING:
    from backend.services import Services


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other bad input, with what was
    typed made visible (``unrecognized arguments`` repeats it as it came)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {visible(message)} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="creditdesk-backend", description="The Creditdesk backend.")
    parser.add_argument("--version", action="version", version=f"creditdesk-backend {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve_cmd = commands.add_parser("serve", help="run the HTTP server until stopped")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=port_number, default=8787, help="port (default 8787; 0 picks a free one)")
    serve_cmd.add_argument("--exit-with-stdin", action="store_true",
                           help="stop when standard input closes (the desktop app uses this so that its bundled "
                                "backend never outlives it, even after a crash)")
    serve_cmd.add_argument("--linger", type=seconds, default=0, metavar="SECONDS",
                           help="with --exit-with-stdin: once standard input closes, keep serving while a checkout "
                                "is still open, for at most SECONDS, so that it can still be paid and its outcome "
                                "shown (default 0)")
    commands.add_parser("check", help="check that the ledger adds up; exit 1 if it does not")
    commands.add_parser("migrate", help="bring the database's schema up to date (SQLite or PostgreSQL)")
    user_cmd = commands.add_parser("user", help="one account: balance, orders, recent ledger, events")
    user_cmd.add_argument("email")
    user_cmd.add_argument("--json", action="store_true", help="print JSON")
    adjust_cmd = commands.add_parser("adjust", help="add (or with a minus sign, take) credits by an adjustment")
    adjust_cmd.add_argument("email")
    adjust_cmd.add_argument("amount", help="whole credits, e.g. 250 or -100")
    adjust_cmd.add_argument("--reason", required=True,
                            help="why: support's note, kept with the entry and shown by `user`; never shown to the "
                                 "user, whose history says \"Adjustment by support\"")
    adjust_cmd.add_argument("--public-note", metavar="TEXT", help="what the user's history says instead")
    adjust_cmd.add_argument("--allow-negative", action="store_true",
                            help="take the balance below zero without asking (otherwise asked on a terminal, and "
                                 "refused without one)")
    adjust_cmd.add_argument("--key", help="an idempotency key: the same key twice adjusts once")
    adjust_cmd.add_argument("--promotional", action="store_true",
                            help="give promotional credits (spent before paid ones); a plain adjustment gives paid")
    adjust_cmd.add_argument("--expires", metavar="WHEN",
                            help="the credits given expire then: a date (2027-01-31, its end in UTC), an ISO 8601 "
                                 "instant, or a lead such as 30d or 12h")
    events_cmd = commands.add_parser("events", help="stored Stripe events with their outcomes")
    events_cmd.add_argument("--order", help="an order id (ord_...)")
    events_cmd.add_argument("--session", help="a Checkout Session id (cs_...)")
    events_cmd.add_argument("--type", help="an event type, such as charge.refunded")
    events_cmd.add_argument("--json", action="store_true", help="print JSON")
    replay_cmd = commands.add_parser("replay", help="run a stored event through the webhook's path again")
    replay_cmd.add_argument("event_id")
    reconcile_cmd = commands.add_parser(
        "reconcile", help="catch up with Stripe's Events API and re-check orders waiting on checkout")
    reconcile_cmd.add_argument("--since", default="72h", help="how far back: 90m, 72h, 30d (at most 30d)")
    reconcile_cmd.add_argument("--json", action="store_true", help="print JSON")
    setup_cmd = commands.add_parser(
        "stripe-setup", help="create (or check) the Stripe webhook endpoint: the pinned API version, the event "
                             "types handled; prints its signing secret once")
    setup_cmd.add_argument("--url", help="the backend's public base URL (default: CREDITDESK_PUBLIC_URL)")
    args = parser.parse_args(argv)

    # The server logs what it does; the admin commands print their answer and log only trouble.
    serving = args.command == "serve"
    log_format = os.environ.get("CREDITDESK_LOG_FORMAT", "").strip().lower()
    logs.configure(logging.INFO if serving else logging.WARNING, in_background=serving,
                   log_format=log_format if log_format in logs.LOG_FORMATS else "text")
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            return serve(settings, args.host, args.port, exit_with_stdin=args.exit_with_stdin, linger=args.linger)
        try:
            status = _admin(settings, args)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (`user ... | head`): stop quietly. The Python docs' recipe: point stdout at
            # devnull, so that the flush at exit does not fail again and print a traceback.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        return status
    except ConfigError as exc:
        say(f"creditdesk-backend: {exc}")
        return 2
    except MigrationError as exc:
        say(f"creditdesk-backend: {exc}")
        return 1
    except (UnknownUser, UnknownOrder, UnknownEvent, InvalidAdjustment, InvalidSince, NoDatabase) as exc:
        say(f"creditdesk-backend: {exc}")
        return 2
    except (CreditdeskError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        say(f"creditdesk-backend: {type(exc).__name__}: {reason[0] if reason else 'no details'}")
        return 1


def _admin(settings: Settings, args: argparse.Namespace) -> int:
    from backend import console

    match args.command:
        case "check":
            return console.check(settings)
        case "migrate":
            return console.migrate(settings)
        case "user":
            return console.user(settings, args.email, as_json=args.json)
        case "adjust":
            return console.adjust(settings, args.email, args.amount, args.reason, args.key,
                                  public_note=args.public_note, allow_negative=args.allow_negative,
                                  promotional=args.promotional, expires=args.expires)
        case "events":
            return console.events(settings, order=args.order, session=args.session, type=args.type, as_json=args.json)
        case "replay":
            return console.replay(settings, args.event_id)
        case "stripe-setup":
            return console.stripe_setup(settings, args.url)
        case "reconcile":
            return console.run_reconcile(settings, args.since, as_json=args.json,
                                         public_url=settings.public_url or "http://127.0.0.1:8787")
    raise AssertionError(args.command)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def say(message: str) -> None:
    """The server's last word on stderr, after every line it logged before (what a user or Stripe wrote in it
    made visible: an email or an id can hold escape sequences)."""
    logs.stop()
    print(visible(message), file=sys.stderr)


def serve(settings: Settings, host: str, port: int, *, exit_with_stdin: bool = False, linger: float = 0) -> int:
    """Start up with the cyclic garbage collector off: the imports, routes and models make some 130,000 objects,
    few of them garbage, and its collections walking them were a sixth of a start's CPU (0.12 s of 0.72 in Stripe
    mode). :func:`settle_heap` collects once, freezes what start-up made and turns it on before serving."""
    gc.disable()
    try:
        return _serve(settings, host, port, exit_with_stdin=exit_with_stdin, linger=linger)
    finally:
        gc.enable()


def _serve(settings: Settings, host: str, port: int, *, exit_with_stdin: bool, linger: float) -> int:
    import uvicorn
    from asgi_correlation_id import CorrelationIdFilter
    from sqlalchemy.exc import SQLAlchemyError

    from backend.api.app import create_app
    from backend.errors import StorageUnavailable
    from backend.services import Services

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it
    # every response body waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except socket.gaierror as exc:
        say(f"creditdesk-backend: cannot listen on {host}: {exc.strerror}. Give an address of this machine "
            "with --host, such as 127.0.0.1.")
        return 2
    except OSError as exc:
        say(f"creditdesk-backend: cannot listen on {host}:{port}: {exc.strerror}. "
            "Is another server using that port? Choose another with --port.")
        return 2
    actual_port = sock.getsockname()[1]
    url_host = f"[{host}]" if family == socket.AF_INET6 else host
    try:
        services = Services.build(settings, f"http://{url_host}:{actual_port}")
    except (StorageUnavailable, OSError, SQLAlchemyError) as exc:
        say(f"creditdesk-backend: cannot open the database {settings.database_name}: {one_line(exc)}. "
            "Check that the disk has room and that this user may write there (CREDITDESK_DB or "
            "CREDITDESK_DATABASE_URL).")
        return 1
    app = create_app(services)
    logs.add_filter(CorrelationIdFilter(default_value=None))
    if settings.metrics_port is not None:
        from backend import metrics

        try:
            metrics_host, metrics_port = metrics.serve(settings.metrics_host, settings.metrics_port)
        except OSError as exc:
            say(f"creditdesk-backend: cannot serve the metrics on {settings.metrics_host}:{settings.metrics_port}: "
                f"{exc.strerror}. Choose another CREDITDESK_METRICS_PORT.")
            return 2
        logging.getLogger("creditdesk").info("metrics at http://%s:%d/metrics", metrics_host, metrics_port)
    # The first line on stdout says where the server is; `--port 0` callers read it.
    print(f"Creditdesk backend listening on http://{url_host}:{actual_port} "
          f"(payments: {services.provider.name})", flush=True)
    # log_config=None: uvicorn logs through our handler on stderr; stdout carries only the line above.
    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For from any local process; the app
    # believes it only from CREDITDESK_TRUSTED_PROXIES (backend/api/client_address.py).
    # ws="none": the API has no websockets, and their libraries stay out of memory.
    config = uvicorn.Config(app, log_config=None, log_level="info", access_log=True, server_header=False,
                            proxy_headers=False, ws="none")
    settle_heap()
    server = uvicorn.Server(config)
    if exit_with_stdin:
        threading.Thread(target=_stop_at_end_of_stdin, args=(server, services, linger), daemon=True).start()
    expiry_loop = None
    if settings.grant_sweep_interval > 0:
        from backend.expiry import ExpiryLoop

        # Grants past their expiry written down, and the credits_expiring alerts made, on time.
        expiry_loop = ExpiryLoop(services.db, settings.grant_sweep_interval, settings.expiry_warnings).start()
    loop = None
    if settings.payments_mode == "stripe" and settings.reconcile_interval > 0:
        from backend.reconcile import Loop

        # A webhook outage heals by itself: missed events are read back from Stripe's Events API.
        loop = Loop(services, settings.reconcile_interval).start()
    if threading.current_thread() is threading.main_thread():
        # A service manager's stop (SIGTERM) ends as Ctrl-C does. uvicorn shuts down on either, then raises the
        # signal again under the handler it found: SIGTERM's default would kill the process there, before the
        # loops below stop and the last log lines are written.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT it has already handled
            server.run(sockets=[sock])
    finally:
        if loop is not None:
            loop.stop()
        if expiry_loop is not None:
            expiry_loop.stop()
    return 0


def settle_heap() -> None:
    """Once the server is built: collect what start-up left, and take what remains (modules, the app, its
    routes and statements: some 130,000 objects in Stripe mode) out of the cyclic garbage collector's sight,
    so that its collections during serving walk only what serving made (:func:`gc.freeze`). Its oldest
    generation's collections walked the whole start-up heap: about 5 % of a webhook's CPU (bench/webhooks.py).
    Then the collector is on again (:func:`serve` starts up without it)."""
    gc.collect()
    gc.freeze()
    gc.enable()


def one_line(exc: BaseException) -> str:
    """The first line of what went wrong, from the driver's own error where there is one."""
    cause = exc.__cause__ or exc
    text = str(getattr(cause, "orig", None) or getattr(cause, "strerror", None) or cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def _stop_at_end_of_stdin(server: object, services: Services, linger: float) -> None:
    """The parent holds our stdin open; when it exits, however it exits, the pipe closes and we stop.

    With ``linger``, not while a checkout is still open (for at most ``linger`` seconds): the desktop app's
    bundled backend is the server of its stub checkout pages and of their outcome pages, so a user who quit
    the app (or whose app died) can still pay in the browser and see what happened.
    """
    log = logging.getLogger("creditdesk")
    # The file descriptor, not sys.stdin: a daemon thread blocked in a buffered read holds the buffer's lock, and
    # when the server stops for another reason (SIGINT, SIGTERM) the interpreter's exit waits a second for that
    # lock, then aborts (SIGABRT, "could not acquire lock for <stdin>").
    with contextlib.suppress(OSError, ValueError):
        while os.read(sys.stdin.fileno(), 4096):
            pass
    until = time.monotonic() + linger
    told = False
    while time.monotonic() < until:
        try:
            with services.db.read() as conn:
                open_now = orders.count_open(conn, created_since=iso_utc(datetime.now(UTC) - CHECKOUT_LIFETIME))
        except CreditdeskError:
            break
        if not open_now:
            break
        if not told:
            log.info("standard input closed: serving %d open checkout(s) for up to %d s more", open_now, linger)
            told = True
        time.sleep(LINGER_CHECK_SECONDS)
    log.info("standard input closed: stopping")
    server.should_exit = True  # type: ignore[attr-defined]


LINGER_CHECK_SECONDS = 1.0
CHECKOUT_LIFETIME = timedelta(hours=24)  # a Checkout Session's, Stripe's and the stub's


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and a week of seconds")
    return value
