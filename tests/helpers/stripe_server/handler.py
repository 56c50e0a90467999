"""HTTP glue: decodes requests, applies faults, and hands them to the owning ``FakeStripe``."""

from __future__ import annotations

import json
import re
import threading
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, ClassVar

from .hosted_page import html_page
from .wire import Headers, StripeError, decode_form, new_id

if TYPE_CHECKING:
    from .server import FakeStripe


class Handler(BaseHTTPRequestHandler):
    """HTTP glue: decodes requests and hands them to the owning FakeStripe."""

    fake: ClassVar[FakeStripe]
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    server_version = "FakeStripe/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length > 0 else b""
        try:
            if parsed.path.startswith("/v1/"):
                self._api(method, urllib.parse.unquote(parsed.path), parsed.query, raw_body)
            else:
                self._hosted(method, parsed.path)
        except Exception:  # the fake must answer, not hang the client
            self.fake.errors.append(traceback.format_exc())
            self._send_json(
                500, StripeError(500, "Internal error in FakeStripe", type="api_error").body(), {}
            )

    def _api(self, method: str, path: str, query: str, raw_body: bytes) -> None:
        request_id = new_id("req_", 14)
        headers = Headers(self.headers.items())
        try:
            body_text = raw_body.decode("utf-8")
            params = decode_form(query) if method != "POST" else {}
            if method == "POST":
                params.update(decode_form(body_text))
        except (UnicodeDecodeError, ValueError) as exc:
            params = {}
            with self.fake._lock:
                self.fake.requests.append(
                    {"method": method, "path": path, "params": params, "headers": headers}
                )
            error = StripeError(400, f"Invalid request body: {exc}")
            self._send_json(400, error.body(request_id), {"Request-Id": request_id})
            return
        with self.fake._lock:
            self.fake.requests.append({"method": method, "path": path, "params": params, "headers": headers})
        fault = self.fake._apply_fault(method, path, request_id)
        if fault == "close":
            self.close_connection = True  # hung up without a word
            return
        if fault is not None:
            self._send(*fault)
            return
        extra = {
            "Request-Id": request_id,
            "Stripe-Version": headers.get("Stripe-Version") or self.fake.api_version,
        }
        if headers.get("Idempotency-Key") and method == "POST":
            extra["Idempotency-Key"] = headers["Idempotency-Key"]
        try:
            status, body, more, events = self.fake._handle_api(method, path, params, headers, request_id)
        except StripeError as error:
            self._send_json(error.status, error.body(request_id), {**extra, **error.headers})
            return
        answered = threading.Event()  # deliveries start once the API answer is out, as at Stripe
        if events and self.fake.deliver_api_events:
            self.fake._deliver_later(events, after=answered)  # registered now, so wait_deliveries sees it
        try:
            self._send_json(status, body, {**extra, **more})
        finally:
            answered.set()

    def _hosted(self, method: str, path: str) -> None:
        invoice = re.fullmatch(r"/invoices/([^/]+?)(/pdf)?/?", path)
        if invoice is not None and method == "GET":
            status, page = self.fake._invoice_page(urllib.parse.unquote(invoice.group(1)), bool(invoice.group(2)))
            self._send_html(status, page)
            return
        match = re.fullmatch(r"/pay/([^/]+)(?:/(confirm|cancel))?/?", path)
        if match is None:
            self._send_html(404, html_page("Not found", "<p>Not found.</p>"))
            return
        session_id, action = urllib.parse.unquote(match.group(1)), match.group(2)
        if action is None and method == "GET":
            status, page = self.fake._page(session_id)
            self._send_html(status, page)
            return
        if action is None or method != "POST":
            self._send_html(
                405, html_page("Method not allowed", "<p>Method not allowed.</p>"), {"Allow": "GET"}
            )
            return
        status, page, location = (self.fake._confirm if action == "confirm" else self.fake._cancel)(
            session_id
        )
        if location is not None:
            self._send(status, b"", "text/plain", {"Location": location})
        else:
            self._send_html(status, page)

    def _send_json(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = (json.dumps(body, indent=2) + "\n").encode("utf-8")
        self._send(status, data, "application/json", headers)

    def _send_html(self, status: int, page: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, page.encode("utf-8"), "text/html; charset=utf-8", headers or {})

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
