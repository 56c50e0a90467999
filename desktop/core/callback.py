"""The loopback callback at the end of Checkout (RFC 8252 §7.3, §8.3).

A one-shot HTTP server on 127.0.0.1, on an ephemeral port, in a daemon thread, open only for the purchase
in flight. The backend's success and cancel pages hand the result to ``return_url`` with ``session_id``,
``state`` and ``status``, by a background request from the page (the browser itself stays on the backend's
page, which states the real outcome). The first request with the right ``state`` and a ``session_id`` is the
result, after which the server closes. Anything else (wrong state, another path) is refused and the listener
keeps waiting.

The result is a hint, never the truth: whatever its ``status`` says, the app asks the backend before it ends a
purchase. The browser may never come back at all (tab closed, browser not opened, the request refused by the
browser's Local Network Access rules): the purchase flow polls the backend too, so the listener is a shortcut,
never the only way on.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import logging
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from desktop.core.models import CallbackResult

__all__ = ["CALLBACK_PATH", "CallbackResult", "LoopbackListener"]

log = logging.getLogger("creditdesk.callback")

CALLBACK_PATH = "/callback"
MAX_SESSION_ID_LENGTH = 255


RECEIVED_PAGE = ("Creditdesk has it",
                 "Creditdesk received this checkout's result and is confirming it with the server. You can close "
                 "this tab and return to Creditdesk.")


def _page(title: str, message: str, detail: str | None = None) -> bytes:
    """A small self-contained page (no external resources: the URL carries the state)."""
    extra = f'<p class="detail">{html.escape(detail)}</p>' if detail else ""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)} · Creditdesk</title>"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<style>body{font-family:system-ui,sans-serif;max-width:34em;margin:4em auto;padding:0 1em;color:#222}"
        ".detail{color:#666;font-size:.9em;word-break:break-all}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{extra}</body></html>\n"
    ).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    listener: LoopbackListener

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser that hangs up mid-answer is no news; never print tracebacks (they may hold the URL).
        log.debug("callback request from %s failed", client_address[0] if client_address else "?")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "Creditdesk"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection: nothing holds the server open after the answer
    timeout = 10  # seconds; a connection that sends nothing does not hold a thread for long

    def log_message(self, format: str, *args: Any) -> None:
        """No request log: the query holds the state."""

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        with contextlib.suppress(OSError):
            self.wfile.flush()

    def do_HEAD(self) -> None:
        self._send(405, _page("Not allowed", "This address only answers the browser's return from Checkout."))

    def do_OPTIONS(self) -> None:
        """A CORS preflight, as Chromium's Private Network Access sent before a public page's request to
        loopback: allow the plain GET (the state check still guards what it does)."""
        origin = self.headers.get("Origin", "")
        self.send_response(204)
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")
        self.send_header("Access-Control-Allow-Methods", "GET")
        self.send_header("Access-Control-Allow-Private-Network", "true")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.do_HEAD()

    def do_GET(self) -> None:
        listener = self.server.listener
        parts = urlsplit(self.path)
        if parts.path != listener.path:
            self._send(404, _page("Not found", "There is nothing at this address."))
            return
        query = parse_qs(parts.query, keep_blank_values=True)
        states = query.get("state", [])
        session_ids = query.get("session_id", [])
        statuses = query.get("status", [])
        if len(states) != 1 or not listener.check_state(states[0]):
            self._send(400, _page(
                "This link is not for this purchase",
                "This return link does not match the purchase Creditdesk is waiting for. "
                "Return to Creditdesk; if you paid, it shows the payment.",
            ))
            return
        if len(session_ids) != 1 or not session_ids[0] or len(session_ids[0]) > MAX_SESSION_ID_LENGTH:
            self._send(400, _page("Something is missing",
                                  "The return link has no checkout session. Return to Creditdesk; "
                                  "if you paid, it shows the payment."))
            return
        status = (statuses[0] if statuses else "").strip().lower() or "pending"
        result = CallbackResult(session_id=session_ids[0], status=status)
        if not listener._claim(result):
            self._send(409, _page("Already received",
                                  "Creditdesk already has the result of this checkout. You can close this tab."))
            return
        if self.headers.get("Sec-Fetch-Mode", "navigate") == "navigate":
            self._send(200, _page(*RECEIVED_PAGE, f"Reference: {result.session_id}"))
        else:  # the backend's page handing the result over in the background: nothing to show
            self._send(204, b"")
        listener._deliver(result)


class LoopbackListener:
    """One-shot loopback server for the end of one Checkout.

    >>> listener = LoopbackListener(on_result=handle, timeout_seconds=1800).start()
    >>> api.checkout(pack_id, listener.return_url, listener.state)
    >>> ...  # later, on any thread: listener.wait(timeout) or the on_result callback; listener.close()

    ``on_result`` runs once, on a server thread, after the listening socket is closed. ``wait`` returns the
    result, or None on timeout or when the listener was closed without one.
    """

    def __init__(
        self, on_result: Callable[[CallbackResult], None] | None = None, *, timeout_seconds: float | None = None,
        path: str = CALLBACK_PATH, port: int = 0, state: str | None = None,
    ) -> None:
        """``port`` and ``state``: listen again for a purchase of an earlier run, at the return URL its checkout
        was given (``start`` raises OSError when that port is taken now)."""
        self.on_result = on_result
        self.timeout_seconds = timeout_seconds
        self.path = path
        self.requested_port = port
        self.state = state or secrets.token_urlsafe(32)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._claimed = False
        self._closed = False
        self._result: CallbackResult | None = None
        self._done = threading.Event()
        self.timed_out = False

    def __repr__(self) -> str:  # never the state
        where = self.return_url if self._server is not None else "not started"
        return f"LoopbackListener({where}, closed={self._closed})"

    def __enter__(self) -> LoopbackListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> LoopbackListener:
        with self._lock:
            if self._server is not None or self._closed:
                raise RuntimeError("a LoopbackListener can be started once")
            server = _Server(("127.0.0.1", self.requested_port), _Handler)  # IPv4 loopback only, ephemeral port
            server.listener = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="creditdesk-callback", daemon=True
            )
            self._thread.start()
            if self.timeout_seconds is not None:
                self._timer = threading.Timer(self.timeout_seconds, self._time_out)
                self._timer.daemon = True
                self._timer.start()
        return self

    @property
    def server_address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the listener is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def return_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def result(self) -> CallbackResult | None:
        return self._result

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def listening(self) -> bool:
        return self._server is not None and not self._closed

    def check_state(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode("utf-8", "surrogateescape"), self.state.encode())

    def wait(self, timeout: float | None = None) -> CallbackResult | None:
        """Block until the callback, a timeout, or ``close()`` from another thread."""
        self._done.wait(timeout)
        return self._result

    def close(self) -> None:
        """Stop listening (idempotent; safe from any thread, including ``on_result``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            server, thread, timer = self._server, self._thread, self._timer
        if timer is not None:
            timer.cancel()
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        self._done.set()

    # -- called from the handler ------------------------------------------------------------------------------

    def _claim(self, result: CallbackResult) -> bool:
        """The first valid callback wins; later ones (a race or a reload) are refused."""
        with self._lock:
            if self._claimed or self._closed:
                return False
            self._claimed = True
            self._result = result
            return True

    def _deliver(self, result: CallbackResult) -> None:
        # The result goes out first (the app is waiting on it); closing the port, which waits for the server
        # loop to notice, comes after. ``_claim`` has already refused every later request.
        log.info("checkout callback received (status=%s)", result.status)
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception:
                log.exception("the callback handler failed")
        self.close()

    def _time_out(self) -> None:
        with self._lock:
            if self._claimed or self._closed:
                return
            self.timed_out = True
        log.info("checkout callback listener timed out after %s s", self.timeout_seconds)
        self.close()
