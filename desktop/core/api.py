"""The backend's HTTP API (see CONTRACT.md) as plain, blocking Python calls for worker threads.

Every call has a connect timeout of a few seconds and a read timeout (``timeout``). Idempotent calls (GETs, and
``spend``, which carries an idempotency key) are retried with backoff on connection errors and 502/503/504;
other POSTs are sent once. Failures raise :class:`ApiError` (the backend answered with an error) or
:class:`BackendUnreachable` (it did not answer), both with a message a user can read.

The bearer token never appears in an exception message, a ``repr`` or a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import requests.auth
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from desktop.core.auto_topup import AutoTopupState, UndoResult
from desktop.core.models import (
    ApiClientError,
    ApiError,
    AuthResult,
    BackendUnreachable,
    BillingDetails,
    CancelledDownload,
    CancelResult,
    CheckoutSession,
    FileNotSaved,
    GrantSummary,
    HeldCredits,
    Pack,
    PaymentVerification,
    Price,
    Receipt,
    ResetCodeSent,
    SentSupportReport,
    ServerHealth,
    SpendResult,
    Transaction,
    TransactionPage,
    User,
    new_idempotency_key,
)
from desktop.core.spend_models import Alert, AlertPage, ConfirmationRequest, SpendControls, Usage

__all__ = [
    "ApiClient",
    "ApiClientError",
    "ApiError",
    "AuthResult",
    "BackendUnreachable",
    "BillingDetails",
    "CancelResult",
    "CancelledDownload",
    "CheckoutSession",
    "FileNotSaved",
    "GrantSummary",
    "HeldCredits",
    "Pack",
    "PaymentVerification",
    "Price",
    "ServerHealth",
    "SpendDeclined",
    "SpendResult",
    "Transaction",
    "TransactionPage",
    "User",
    "new_idempotency_key",
]

T = TypeVar("T")
log = logging.getLogger("creditdesk.api")

CONNECT_TIMEOUT = 3.0
RETRY_STATUSES = (502, 503, 504)


class SpendDeclined(ApiClientError):
    """A spend needed confirmation and the user did not confirm it; nothing was spent."""

    def __init__(self, request: ConfirmationRequest) -> None:
        self.message = f"The spend of {request.amount:,} credits was not confirmed; nothing was spent."
        super().__init__(self.message)
        self.request = request


_FALLBACK_MESSAGES = {
    400: "The server did not accept the request.",
    401: "Your sign-in has expired or is not valid; please sign in again.",
    402: "There are not enough credits for this.",
    404: "The server does not know this address or item.",
    409: "The request conflicts with an earlier one.",
    422: "Some fields are missing or invalid.",
    429: "Too many requests; please wait a moment and try again.",
    502: "The Creditdesk server is not available right now (bad gateway).",
    503: "The Creditdesk server is not available right now; please try again in a moment.",
    504: "The Creditdesk server took too long to answer (gateway timeout).",
}


def _parse_retry_after(value: str | None) -> int | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, int((when - datetime.now(UTC)).total_seconds() + 0.999))


def _web_url(text: object) -> str:
    """A link the backend gives for the browser: http(s) only (a receipt opens in the system browser, which
    would run any other scheme's handler)."""
    if not isinstance(text, str) or urlsplit(text).scheme not in ("http", "https"):
        raise ValueError("not a web link")
    return text


def _billing_details(body: dict[str, Any]) -> BillingDetails:
    address, tax_id = body["address"], body["taxId"]
    return BillingDetails(
        name=str(body["name"]), line1=str(address["line1"]), line2=str(address["line2"]), city=str(address["city"]),
        postal_code=str(address["postalCode"]), state=str(address["state"]), country=str(address["country"]),
        tax_id_type=str(tax_id["type"]) if tax_id else "", tax_id_value=str(tax_id["value"]) if tax_id else "")


def _decimal(text: object) -> Decimal | None:
    """A decimal string of the API (``"3.003"``) as a Decimal; None when absent (an older backend). Anything else
    is a bad answer (ValueError)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("a decimal is sent as a string")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a decimal: {text[:20]!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError("not a decimal of zero or more")
    return value


class ApiClient:
    """A client for one backend. Safe to share between threads (one ``requests.Session`` per thread).

    ``token`` is the bearer token; ``register`` and ``login`` set it, ``logout`` clears it.
    ``retries`` bounds the retries of idempotent calls (0 turns them off, e.g. for a quick health probe).
    """

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 10.0, retries: int = 3) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self._local = threading.local()
        self._sessions: weakref.WeakSet[requests.Session] = weakref.WeakSet()
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r}, signed_in={self.token is not None})"

    # -- sessions ---------------------------------------------------------------------------------------------

    def _new_session(self, retry: Retry) -> requests.Session:
        session = requests.Session()
        # A loopback backend (the bundled one) must not go through an HTTP(S)_PROXY from the environment.
        session.trust_env = not _is_loopback(self.base_url)
        adapter = HTTPAdapter(max_retries=retry, pool_connections=2, pool_maxsize=4)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"Accept": "application/json", "User-Agent": "creditdesk-desktop"})
        with self._sessions_lock:
            self._sessions.add(session)
        return session

    def _session(self, retrying: bool) -> requests.Session:
        """This thread's session: ``retrying`` for idempotent calls, the other one for everything else."""
        name = "retrying" if retrying else "once"
        session = getattr(self._local, name, None)
        if session is None:
            if retrying and self.retries > 0:
                # A read error (timeout, dropped connection) is retried once: a hung server should not cost
                # (retries + 1) read timeouts.
                retry = Retry(
                    total=self.retries, connect=self.retries, read=1, status=self.retries,
                    other=0, redirect=0, backoff_factor=0.25, backoff_max=4.0,
                    status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET", "POST", "PUT"}),
                    raise_on_status=False, raise_on_redirect=False,
                    # A long Retry-After would block the worker; the caller sees it on the ApiError instead.
                    respect_retry_after_header=False,
                )
            else:
                retry = Retry(total=0, read=False, redirect=0, raise_on_status=False, raise_on_redirect=False)
            session = self._new_session(retry)
            setattr(self._local, name, session)
        return session

    def close(self) -> None:
        """Close the connection pools of every thread's sessions (at shutdown)."""
        with self._sessions_lock:
            sessions = list(self._sessions)
            self._sessions.clear()
        for session in sessions:
            session.close()
        self._local = threading.local()

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, auth: bool = False, idempotent: bool | None = None,
        json: dict[str, Any] | None = None, params: dict[str, Any] | None = None, timeout: float | None = None,
        stream: bool = False,
    ) -> requests.Response:
        if idempotent is None:
            idempotent = method == "GET"
        credentials: requests.auth.AuthBase = _NO_AUTH
        if auth:
            if not self.token:
                raise ApiError(401, "not_signed_in", "Sign in first.")
            credentials = _BearerAuth(self.token)
        url = self.base_url + path
        read_timeout = self.timeout if timeout is None else timeout
        try:
            response = self._session(idempotent).request(
                method, url, auth=credentials, json=json, params=params,
                timeout=(min(CONNECT_TIMEOUT, read_timeout), read_timeout), allow_redirects=False, stream=stream,
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            if isinstance(exc, requests.ConnectTimeout) or not _is_read_timeout(exc):
                log.info("%s %s: connection failed (%s)", method, path, type(exc).__name__)
                raise BackendUnreachable(f"The Creditdesk server at {self.base_url} is not answering.") from None
            log.info("%s %s: timed out", method, path)
            raise BackendUnreachable(
                f"The Creditdesk server at {self.base_url} did not answer in time ({read_timeout:g} s)."
            ) from None
        except requests.RequestException as exc:
            log.info("%s %s: %s", method, path, type(exc).__name__)
            raise BackendUnreachable(
                f"Could not talk to the Creditdesk server at {self.base_url} ({type(exc).__name__})."
            ) from None
        if response.status_code >= 400:
            raise self._error(response)
        if 300 <= response.status_code < 400:
            raise ApiError(response.status_code, "unexpected_redirect",
                           f"The server at {self.base_url} redirected the request; is this the right address?")
        return response

    def _error(self, response: requests.Response) -> ApiError:
        status = response.status_code
        retry_after = _parse_retry_after(response.headers.get("Retry-After"))
        code, message, details = f"http_{status}", "", None
        try:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                code = str(error.get("code") or code)
                message = str(error.get("message") or "")
                details = error.get("details") if isinstance(error.get("details"), dict) else None
        except ValueError:
            pass
        if not message:
            message = _FALLBACK_MESSAGES.get(
                status,
                f"The Creditdesk server answered with an error (HTTP {status})."
                if status >= 500 else f"The request was refused (HTTP {status}).",
            )
        log.info("%s %s: HTTP %s %s", response.request.method, _path_of(response), status, code)
        return ApiError(status, code, message, retry_after, details)

    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self._bad_answer(response)
        return body

    def _bad_answer(self, response: requests.Response) -> ApiError:
        return ApiError(response.status_code, "invalid_response",
                        f"The server at {self.base_url} sent an answer Creditdesk does not understand; "
                        "is this a Creditdesk server?")

    def _parse(self, response: requests.Response, build: Callable[[Any], T]) -> T:
        body = self._json(response)
        try:
            return build(body)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self._bad_answer(response) from None

    # -- the API ----------------------------------------------------------------------------------------------

    def health(self, *, timeout: float | None = None) -> ServerHealth:
        """``GET /api/health``, with the round trip in milliseconds."""
        started = time.perf_counter()
        response = self._request("GET", "/api/health", timeout=timeout)
        latency_ms = (time.perf_counter() - started) * 1000
        def build(b: Any) -> ServerHealth:
            provider = b.get("paymentProvider") or {}
            retry_after = provider.get("retryAfter")
            return ServerHealth(
                status=str(b["status"]), payments=str(b["payments"]), version=str(b["version"]),
                latency_ms=round(latency_ms, 1), provider_state=str(provider.get("state", "available")),
                provider_retry_after=int(retry_after) if retry_after is not None else None,
            )

        return self._parse(response, build)

    def _auth(self, path: str, email_address: str, password: str) -> AuthResult:
        response = self._request("POST", path, json={"email": email_address, "password": password})
        result: AuthResult = self._parse(response, lambda b: AuthResult(
            token=str(b["token"]), user=User(id=int(b["user"]["id"]), email=str(b["user"]["email"])),
        ))
        self.token = result.token
        return result

    def register(self, email: str, password: str) -> AuthResult:
        """Create an account; signs this client in."""
        return self._auth("/api/auth/register", email, password)

    def login(self, email: str, password: str) -> AuthResult:
        """Sign in; signs this client in."""
        return self._auth("/api/auth/login", email, password)

    def request_password_reset(self, email: str) -> ResetCodeSent:
        """Ask for a code to choose a new password; the server's sentence and how long the code works (the same
        whether or not the account exists)."""
        response = self._request("POST", "/api/auth/password-reset", json={"email": email})
        return self._parse(response, lambda b: ResetCodeSent(
            str(b["message"]), b["expiresInSeconds"] if isinstance(b.get("expiresInSeconds"), int) else None))

    def confirm_password_reset(self, email: str, code: str, password: str) -> AuthResult:
        """A new password with the code from the mail: every other sign-in of the account ends, and this client
        is signed in (``invalid_code`` when the code is wrong, expired or used)."""
        response = self._request("POST", "/api/auth/password-reset/confirm",
                                 json={"email": email, "code": code, "password": password})
        result: AuthResult = self._parse(response, lambda b: AuthResult(
            token=str(b["token"]), user=User(id=int(b["user"]["id"]), email=str(b["user"]["email"])),
        ))
        self.token = result.token
        return result

    def logout(self) -> None:
        """Revoke the token on the server and forget it. A token the server no longer knows counts as done;
        if the server cannot be reached the token is kept (and the error raised) so that the caller may retry."""
        if not self.token:
            return
        try:
            self._request("POST", "/api/auth/logout", auth=True)
        except ApiError as exc:
            if exc.status != 401:
                raise
        self.token = None

    def packs(self) -> list[Pack]:
        response = self._request("GET", "/api/billing/packs")
        return self._parse(response, lambda b: [
            Pack(id=str(p["id"]), name=str(p["name"]), credits=int(p["credits"]), amount=int(p["amount"]),
                 currency=str(p["currency"]), price_per_credit=_decimal(p.get("pricePerCredit")),
                 tax=p.get("tax") if p.get("tax") in ("exclusive", "inclusive") else None)
            for p in b["packs"]
        ])

    def receipts(self) -> list[Receipt]:
        """The user's receipts, newest first."""
        response = self._request("GET", "/api/billing/receipts", auth=True)
        return self._parse(response, lambda b: [
            Receipt(order_id=str(r["orderId"]), session_id=str(r["sessionId"]), credits=int(r["credits"]),
                    amount=int(r["amount"]), currency=str(r["currency"]), paid_at=str(r["paidAt"]),
                    url=_web_url(r["url"]))
            for r in b["receipts"]
        ])

    def send_support_report(self, message: str, report: Mapping[str, Any]) -> SentSupportReport:
        """Help → Report a problem: the user's words and their diagnostics report. Sent once (not retried: a
        retry could keep it twice)."""
        response = self._request("POST", "/api/support/reports", auth=True,
                                 json={"message": message, "report": dict(report)})
        return self._parse(response, lambda b: SentSupportReport(report_id=str(b["reportId"]),
                                                                 received_at=str(b["receivedAt"])))

    def billing_details(self) -> BillingDetails:
        """The billing details printed on receipts (blank until set)."""
        return self._parse(self._request("GET", "/api/billing/details", auth=True), _billing_details)

    def set_billing_details(self, details: BillingDetails) -> BillingDetails:
        """Set them for every receipt after this; answers them as the backend kept them. Retried like a GET:
        setting the same details twice is the same."""
        response = self._request("PUT", "/api/billing/details", auth=True, idempotent=True, json=details.as_json())
        return self._parse(response, _billing_details)

    def balance(self) -> int:
        response = self._request("GET", "/api/credits/balance", auth=True)
        return self._parse(response, lambda b: int(b["balance"]))

    def credits(self) -> tuple[int, GrantSummary | None]:
        """The balance, and what it says of its grants (None from a backend older than grants): one request."""
        response = self._request("GET", "/api/credits/balance", auth=True)
        return self._parse(response, lambda b: (int(b["balance"]), GrantSummary.from_json(b)))

    def held_credits(self) -> HeldCredits | None:
        """What open holds reserve; None from a backend older than holds (it has no ``/api/credits/holds``)."""
        try:
            response = self._request("GET", "/api/credits/holds", auth=True, params={"limit": 200})
        except ApiError as error:
            if error.status == 404 and error.code == "not_found":  # no such path there
                return None
            raise
        return self._parse(response, HeldCredits.from_json)

    def transactions(self, limit: int = 50, before: str | int | None = None) -> TransactionPage:
        """One page of the history, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        response = self._request("GET", "/api/credits/transactions", auth=True, params=params)

        def build(b: dict[str, Any]) -> TransactionPage:
            items = tuple(
                Transaction(id=int(t["id"]), type=str(t["type"]), amount=int(t["amount"]),
                            balance_after=int(t["balanceAfter"]), created_at=str(t["createdAt"]),
                            reference=t.get("reference"), description=t.get("description"),
                            order_id=_optional_str(t.get("orderId")), payment=_payment(t.get("payment")),
                            auto_topup=t.get("autoTopup") is True)
                for t in b["transactions"]
            )
            cursor = b.get("nextCursor")
            return TransactionPage(items=items, next_cursor=None if cursor is None else str(cursor))

        return self._parse(response, build)

    def checkout(self, pack_id: str, return_url: str | None = None, state: str | None = None, *,
                 save_card: bool = False) -> CheckoutSession:
        """Start a Checkout for ``pack_id``; open ``url`` in the browser. Sent once (not retried). ``save_card``:
        auto top-up's first top-up, whose card is saved for the ones that follow."""
        body: dict[str, Any] = {"packId": pack_id}
        if save_card:
            body["saveCard"] = True
        if return_url is not None:
            body["returnUrl"] = return_url
        if state is not None:
            body["state"] = state
        response = self._request("POST", "/api/billing/checkout", auth=True, json=body)
        return self._parse(response, lambda b: CheckoutSession(session_id=str(b["sessionId"]), url=str(b["url"]),
                                                               order_id=_optional_str(b.get("orderId"))))

    def cancel(self, session_id: str) -> CancelResult:
        """Cancel a checkout so that it can no longer be paid. Retried like a GET: cancelling twice is the same."""
        response = self._request("POST", "/api/billing/cancel", auth=True, idempotent=True,
                                 json={"sessionId": session_id})
        return self._parse(response, lambda b: CancelResult(session_id=str(b["sessionId"]), status=str(b["status"])))

    def verify_payment(self, session_id: str) -> PaymentVerification:
        response = self._request("GET", "/api/billing/verify-payment", auth=True, params={"session_id": session_id})
        return self._parse(response, lambda b: PaymentVerification(
            session_id=str(b["sessionId"]), status=str(b["status"]), credits_granted=int(b["creditsGranted"]),
            balance=int(b["balance"]), payment=_payment(b.get("payment")),
        ))

    def spend(self, amount: int, idempotency_key: str, description: str | None = None, *,
              feature: str | None = None, confirmation_token: str | None = None) -> SpendResult:
        """Spend credits. Retried like a GET: the idempotency key makes a repeat spend nothing more.

        Refusals are ApiErrors: 402 ``insufficient_credits``, 403 ``spend_cap_reached`` (``details``: the cap),
        428 ``confirmation_required`` (``details``: the token to repeat the spend with)."""
        body: dict[str, Any] = {"amount": amount, "idempotencyKey": idempotency_key}
        if description is not None:
            body["description"] = description
        if feature is not None:
            body["feature"] = feature
        if confirmation_token is not None:
            body["confirmationToken"] = confirmation_token
        response = self._request("POST", "/api/credits/spend", auth=True, idempotent=True, json=body)
        return self._parse(response, lambda b: SpendResult(transaction_id=int(b["transactionId"]),
                                                           balance=int(b["balance"])))

    def spend_with_confirmation(
        self, amount: int, description: str | None = None, *, confirm: Callable[[ConfirmationRequest], bool],
        feature: str | None = None, idempotency_key: str | None = None,
    ) -> SpendResult:
        """Spend credits, asking ``confirm`` first when the user's controls want a confirmation: the one call a
        host application needs. ``confirm`` gets the amount and the balance after it and answers yes or no.

        Raises SpendDeclined when the user says no, and ApiError for every other refusal (``refusal_for`` in
        ``desktop.core.spending`` says what blocked it and which fix to offer). One idempotency key covers the
        question and the confirmed spend, so a retry never spends twice.
        """
        key = idempotency_key or new_idempotency_key()
        try:
            return self.spend(amount, key, description, feature=feature)
        except ApiError as exc:
            if exc.code != "confirmation_required":
                raise
            request = self._confirmation(exc)
        if not confirm(request):
            raise SpendDeclined(request)
        return self.spend(amount, key, description, feature=feature, confirmation_token=request.token)

    def _confirmation(self, error: ApiError) -> ConfirmationRequest:
        try:
            return ConfirmationRequest.from_details(error.details or {}, error.message)
        except (KeyError, TypeError, ValueError):
            raise ApiError(error.status, "invalid_response",
                           f"The server at {self.base_url} asked to confirm a spend without a confirmation token; "
                           "is this a Creditdesk server?") from None

    # -- spend controls, alerts, usage --------------------------------------------------------------------------

    def spend_controls(self) -> SpendControls:
        response = self._request("GET", "/api/credits/controls", auth=True)
        return self._parse(response, SpendControls.from_json)

    def update_spend_controls(self, changes: Mapping[str, Any]) -> SpendControls:
        """``PUT /api/credits/controls`` with ``changes`` in the API's names (``{"caps": {"day": 100}}``, ``None``
        clears). Retried like a GET: setting the same values twice changes nothing more."""
        response = self._request("PUT", "/api/credits/controls", auth=True, idempotent=True, json=dict(changes))
        return self._parse(response, SpendControls.from_json)

    def auto_topup(self) -> AutoTopupState:
        response = self._request("GET", "/api/credits/auto-topup", auth=True)
        return self._parse(response, AutoTopupState.from_json)

    def update_auto_topup(self, changes: Mapping[str, Any]) -> AutoTopupState:
        """``PUT /api/credits/auto-topup`` (``{"enabled": false}`` turns it off). Retried like a GET: the same
        settings twice are the same."""
        response = self._request("PUT", "/api/credits/auto-topup", auth=True, idempotent=True, json=dict(changes))
        return self._parse(response, AutoTopupState.from_json)

    def undo_topup(self, topup_id: str) -> UndoResult:
        """Undo a top-up (its unspent part refunded). Retried: a second Undo of one undone is refused, not doubled."""
        response = self._request("POST", f"/api/credits/auto-topup/{topup_id}/undo", auth=True, idempotent=True)
        return self._parse(response, UndoResult.from_json)

    def alerts(self, *, unread: bool = False, limit: int = 50, before: str | int | None = None) -> AlertPage:
        """A page of alerts, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if unread:
            params["unread"] = "true"
        if before is not None:
            params["before"] = before
        response = self._request("GET", "/api/alerts", auth=True, params=params)
        return self._parse(response, AlertPage.from_json)

    def mark_alerts_read(self, ids: Iterable[int] | None = None) -> int:
        """Mark these alerts read (all of them when ``ids`` is None); returns how many are still unread."""
        body: dict[str, Any] = {"all": True} if ids is None else {"ids": list(ids)}
        response = self._request("POST", "/api/alerts/read", auth=True, idempotent=True, json=body)
        return self._parse(response, lambda b: int(b["unread"]))

    def send_test_alert(self) -> Alert:
        response = self._request("POST", "/api/alerts/test", auth=True)
        return self._parse(response, Alert.from_json)

    def usage(self, granularity: str = "day", first: date | None = None, last: date | None = None) -> Usage:
        """The usage dashboard: per ``granularity`` (day, week, month) from ``first`` to ``last`` (the user's
        local dates; by default up to today)."""
        params: dict[str, Any] = {"granularity": granularity}
        if first is not None:
            params["from"] = first.isoformat()
        if last is not None:
            params["to"] = last.isoformat()
        response = self._request("GET", "/api/credits/usage", auth=True, params=params)
        return self._parse(response, Usage.from_json)

    def download_transactions_csv(
        self, path: Path, first: date | None = None, last: date | None = None, *,
        progress: Callable[[int], None] | None = None, cancelled: Callable[[], bool] | None = None,
    ) -> int:
        """Save the ledger from ``first`` to ``last`` as CSV at ``path``; returns the bytes written.

        Written to a temporary file beside ``path`` and renamed at the end, so ``path`` is the whole file or
        untouched. ``progress`` gets the bytes so far; when ``cancelled()`` turns true the download stops and
        CancelledDownload is raised."""
        params: dict[str, Any] = {}
        if first is not None:
            params["from"] = first.isoformat()
        if last is not None:
            params["to"] = last.isoformat()
        path = Path(path)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        response = self._request("GET", "/api/credits/transactions.csv", auth=True, params=params, stream=True,
                                 timeout=max(self.timeout, 60.0))
        written = 0
        try:
            with response, partial.open("wb") as out:
                for chunk in response.iter_content(64 * 1024):
                    if cancelled is not None and cancelled():
                        raise CancelledDownload("The export was cancelled.")
                    out.write(chunk)
                    written += len(chunk)
                    if progress is not None:
                        progress(written)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        except requests.RequestException:
            raise BackendUnreachable(f"The download from {self.base_url} broke off; please try again.") from None
        except OSError as exc:
            raise FileNotSaved(f"Could not save {path.name}: {exc.strerror or exc}.") from None
        finally:
            with contextlib.suppress(OSError):
                partial.unlink()
        return written


class _BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer``. Passing an auth object (never None) also stops requests from adding
    credentials of its own from ~/.netrc."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(<token>)"


class _NoAuth(requests.auth.AuthBase):
    """No credentials at all (and none from ~/.netrc)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_NO_AUTH = _NoAuth()


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _payment(value: Any) -> Price | None:
    if not isinstance(value, dict):
        return None
    return Price(amount=int(value["amount"]), currency=str(value["currency"]))


def _is_read_timeout(exc: requests.RequestException) -> bool:
    """A read timeout, raised directly or (after retries) wrapped in a MaxRetryError."""
    if isinstance(exc, requests.ReadTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ReadTimeoutError)


def _path_of(response: requests.Response) -> str:
    """The request's path without its query (which may carry a session id; never a token)."""
    return urlsplit(response.request.url or "").path
