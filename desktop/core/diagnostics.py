"""The support diagnostics report, shared by ``creditdesk --diagnostics`` and the app's diagnostics panel.

It answers support's first question, "I paid but I don't see my credits": the backend and whether it answers,
the account with its balance and recent ledger as the backend has them, and each recent purchase with its order
and session ids, its status here and at the backend now, and its timeline (created, browser opened, returned,
confirmed, credited, refunded or disputed); besides the app's versions, folders, keyring, last errors and log.

``build_report`` gives a JSON-ready dict (``creditdesk --diagnostics`` and "Copy report" print it as JSON);
``render_text`` writes it as a readable report with sections (the panel and "Save report"). Everything that
comes from logs, errors or the backend is passed through :func:`redact`; emails are masked, whatever their
letters; tokens, keys and passwords never appear. ``build_report`` makes a few network calls with short
timeouts: call it on a worker thread from the GUI.
"""

from __future__ import annotations

import json
import platform
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from desktop.core._files import tail_lines
from desktop.core.api import ApiClient, ApiClientError, Transaction
from desktop.core.identity import BackendIdentity
from desktop.core.purchase_records import PurchaseRecord, PurchaseRecords
from desktop.core.settings import AppPaths
from desktop.core.tokens import TokenStore
from desktop.core.version import package_version
from resources import currencies
from resources.redaction import REDACTED, mask_email, redact

__all__ = ["REDACTED", "build_report", "errors_from_log", "mask_email", "package_version", "redact",
           "render_text", "report_json"]

REPORT_VERSION = 2
LEDGER_ROWS = 20
_PROBLEM_LINE = re.compile(r"\s(WARNING|ERROR|CRITICAL)\s")


def errors_from_log(log_file: Path, n: int = 20) -> list[str]:
    """The last warnings and errors of the app's log (for a report made outside the app)."""
    return [line for line in tail_lines(Path(log_file), 400) if _PROBLEM_LINE.search(line)][-n:]


def _instant(iso: str) -> datetime:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)


def _now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _backend_section(backend_url: str | None, identity: BackendIdentity | None, bundled: bool,
                     timeout: float) -> dict[str, Any]:
    section: dict[str, Any] = {
        "url": redact(backend_url) if backend_url else None, "identity": identity.key if identity else None,
        "bundled": bundled, "reachable": False, "latency_ms": None, "version": None, "payments": None,
        "error": None,
    }
    if not backend_url:
        section["error"] = "No backend is configured or running."
        return section
    client = ApiClient(backend_url, timeout=timeout, retries=0)
    try:
        health = client.health(timeout=timeout)
    except ApiClientError as exc:
        section["error"] = redact(str(exc))
    except Exception as exc:  # the report must come out whatever happens
        section["error"] = redact(f"{type(exc).__name__}: {exc}")
    else:
        section.update(reachable=True, latency_ms=health.latency_ms, version=health.version,
                       payments=health.payments)
    finally:
        client.close()
    return section


def _ledger_row(entry: Transaction) -> dict[str, Any]:
    return {"id": entry.id, "type": entry.type, "amount": entry.amount, "balance_after": entry.balance_after,
            "created_at": entry.created_at, "reference": entry.reference, "order_id": entry.order_id,
            "description": redact(entry.description or ""),
            "paid": {"amount": entry.payment.amount, "currency": entry.payment.currency} if entry.payment else None}


def _account_section(client: ApiClient | None, email: str | None, signed_out_email: str | None) -> dict[str, Any]:
    section: dict[str, Any] = {"signed_in": email is not None, "email": mask_email(email or signed_out_email),
                               "balance": None, "ledger": [], "error": None}
    if client is None:
        if signed_out_email:
            section["error"] = "Signed out: no kept sign-in works for this account on this backend."
        return section
    try:
        section["balance"] = client.balance()
        section["ledger"] = [_ledger_row(e) for e in client.transactions(limit=LEDGER_ROWS).items]
    except ApiClientError as exc:
        section["error"] = redact(str(exc))
    return section


def _purchase_section(purchase: PurchaseRecord, client: ApiClient | None, mine: bool,
                      credited: dict[str, str]) -> dict[str, Any]:
    at_backend: dict[str, Any] | None = None
    if client is not None and mine:
        try:
            verified = client.verify_payment(purchase.session_id)
            at_backend = {"status": verified.status, "credits_granted": verified.credits_granted}
        except ApiClientError as exc:
            at_backend = {"error": redact(str(exc))}
    timeline = [{"event": e.event, "at": e.at, **({"detail": redact(e.detail)} if e.detail else {})}
                for e in purchase.events]
    if not any(e["event"] == "created" for e in timeline):
        timeline.insert(0, {"event": "created", "at": purchase.started_at})
    if purchase.session_id in credited:
        timeline.append({"event": "credited", "at": credited[purchase.session_id]})
    timeline.sort(key=lambda e: _instant(e["at"]))
    return {
        "pack": purchase.pack_name or purchase.pack_id, "credits": purchase.credits,
        "price": {"amount": purchase.amount, "currency": purchase.currency} if purchase.amount is not None else None,
        "order_id": purchase.order_id, "session_id": purchase.session_id,
        "status": purchase.status, "at_backend": at_backend if mine else "another account or backend",
        "started_at": purchase.started_at, "finished_at": purchase.finished_at,
        "last_checked_at": purchase.last_checked_at, "timeline": timeline,
    }


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    """Replace any known secret that slipped into any string of the report (belt and braces)."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return redact(value) if "@" in value else value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, secrets) for v in value]
    return value


def build_report(
    *,
    backend_url: str | None,
    identity: BackendIdentity | None = None,
    bundled: bool = False,
    account_email: str | None = None,
    token: str | None = None,
    token_store: TokenStore | None = None,
    paths: AppPaths | None = None,
    purchase_records: PurchaseRecords | None = None,
    errors: Iterable[str] = (),
    log_file: Path | None = None,
    log_lines: int = 50,
    purchases: int = 10,
    health_timeout: float = 2.0,
    known_secrets: Iterable[str | None] = (),
    supervision: dict[str, Any] | None = None,
    signed_out_email: str | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict.

    ``account_email`` is the signed-in account (None when signed out) and ``token`` its sign-in, with which the
    balance, ledger and purchases' statuses are read from the backend; ``errors`` the app's last error messages;
    ``log_file`` defaults to ``paths.log_file``; ``known_secrets`` are removed from every string of the report
    on top of the pattern-based redaction.
    """
    if identity is None and backend_url:
        identity = BackendIdentity.for_url(backend_url)
    secrets = [s for s in (*known_secrets, token) if s and len(s) >= 4]
    backend = _backend_section(backend_url, identity, bundled, health_timeout)
    if supervision:
        backend["supervision"] = {k: redact(v) if isinstance(v, str) else v for k, v in supervision.items()}
    client = (ApiClient(backend_url, token, timeout=max(health_timeout, 5.0), retries=0)
              if backend_url and token and account_email and backend["reachable"] else None)
    try:
        account = _account_section(client, account_email, signed_out_email)
        report: dict[str, Any] = {
            "report_version": REPORT_VERSION,
            "generated_at": _now_iso(),
            "app": {
                "version": package_version("creditdesk") or "unknown",
                "python": f"{platform.python_implementation()} {platform.python_version()}",
                "python_executable": sys.executable,
                "qt": package_version("PySide6-Essentials", "PySide6") or "not installed",
                "os": platform.platform(),
                "time_zone": datetime.now().astimezone().tzname(),
            },
            "backend": backend,
            "account": account,
            "purchases": [],
            "errors": [redact(str(error), secrets) for error in errors],
            "keyring": (
                {"backend": token_store.backend_name, "persistent": token_store.persistent,
                 "where": token_store.where}
                if token_store is not None else None
            ),
            "paths": (
                {"data": str(paths.data_dir), "config": str(paths.config_dir), "log": str(paths.log_dir)}
                if paths is not None else None
            ),
            "log": None,
        }
        if purchase_records is not None:
            credited = {row["reference"]: row["created_at"] for row in account["ledger"]
                        if row["type"] == "purchase" and row["reference"]}
            email = (account_email or "").strip().lower()
            try:
                report["purchases"] = [
                    _purchase_section(p, client, mine=bool(email) and p.account_email.strip().lower() == email
                                      and (identity is None or p.backend_id == identity.key), credited=credited)
                    for p in purchase_records.recent(purchases)
                ]
            except Exception as exc:
                report["purchases"] = [{"error": redact(f"{type(exc).__name__}: {exc}", secrets)}]
    finally:
        if client is not None:
            client.close()
    if log_file is None and paths is not None:
        log_file = paths.log_file
    if log_file is not None:
        report["log"] = {"file": str(log_file),
                         "tail": [redact(line, secrets) for line in tail_lines(Path(log_file), log_lines)]}
    scrubbed: dict[str, Any] = _scrub(report, secrets)
    return scrubbed


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


# -- the readable report ------------------------------------------------------------------------------------------

MoneyWriter = Callable[[int, str], str]  # (amount in minor units, currency) -> text


def _money(price: dict[str, Any] | None, money: MoneyWriter) -> str:
    if not price or price.get("amount") is None:
        return ""
    return money(int(price["amount"]), str(price.get("currency") or ""))


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def render_text(report: dict[str, Any], money: MoneyWriter = currencies.plain) -> str:
    """The report with sections, for people: what the panel shows and "Save report" writes. ``money`` writes its
    amounts: the app passes its own formatter (``$25.00``, as its windows write them); without one, Stripe's
    amounts locale-free (``25.00 USD``)."""
    lines: list[str] = [f"Creditdesk diagnostics, generated {report.get('generated_at')}"]

    def section(title: str) -> None:
        lines.extend(["", title, "-" * len(title)])

    def field(label: str, value: Any) -> None:
        lines.append(f"{label + ':':<22} {'—' if value in (None, '') else value}")

    app = report.get("app") or {}
    section("App")
    field("Version", app.get("version"))
    field("Python", f"{app.get('python')} ({app.get('python_executable')})")
    field("Qt", app.get("qt"))
    field("System", app.get("os"))
    field("Time zone", app.get("time_zone"))

    backend = report.get("backend") or {}
    section("Backend")
    field("Address", backend.get("url"))
    field("Identity", backend.get("identity"))
    field("Built in", _yes(backend.get("bundled")))
    if backend.get("reachable"):
        field("Answers", f"yes, in {backend.get('latency_ms')} ms")
        field("Version", backend.get("version"))
        field("Payments", backend.get("payments"))
    else:
        field("Answers", f"no: {backend.get('error')}")
    supervision = backend.get("supervision") or {}
    if supervision:
        field("Restarts", supervision.get("restarts"))
        if supervision.get("problem"):
            field("Last problem", supervision.get("problem"))

    account = report.get("account") or {}
    section("Account")
    field("Signed in", f"yes, as {account.get('email')}" if account.get("signed_in") else
          f"no{' (last: ' + account['email'] + ')' if account.get('email') else ''}")
    if account.get("error"):
        field("Problem", account["error"])
    if account.get("balance") is not None:
        field("Balance", f"{account['balance']:,} credits")
    if account.get("ledger"):
        lines.append("Recent ledger (newest first):")
        for row in account["ledger"]:
            paid = f", paid {_money(row.get('paid'), money)}" if row.get("paid") else ""
            order = f", order {row['order_id']}" if row.get("order_id") else ""
            lines.append(f"  {row['created_at']}  {row['type']:<12} {row['amount']:>+9,} → {row['balance_after']:>9,}"
                         f"  {row.get('description') or ''}{paid}{order}  (ref {row.get('reference')})")

    section("Purchases (newest first)")
    purchases = report.get("purchases") or []
    if not purchases:
        lines.append("None on record.")
    for purchase in purchases:
        if "error" in purchase and "session_id" not in purchase:
            lines.append(f"Could not read the purchases: {purchase['error']}")
            continue
        price = _money(purchase.get("price"), money)
        lines.append(f"{purchase.get('pack')} pack, {purchase.get('credits'):,} credits"
                     f"{', ' + price if price else ''}")
        lines.append(f"  order {purchase.get('order_id') or '—'} · session {purchase.get('session_id')}")
        at_backend = purchase.get("at_backend")
        if isinstance(at_backend, dict):
            backend_says = (f"{at_backend['status']} ({at_backend['credits_granted']:,} credits granted)"
                            if "status" in at_backend else f"could not ask: {at_backend.get('error')}")
        else:
            backend_says = at_backend or "not asked"
        lines.append(f"  status here: {purchase.get('status')} · at the backend now: {backend_says}")
        for event in purchase.get("timeline") or []:
            detail = f" ({event['detail']})" if event.get("detail") else ""
            lines.append(f"    {event['at']}  {event['event'].replace('_', ' ')}{detail}")

    section("Recent errors")
    lines.extend(report.get("errors") or ["None."])

    keyring = report.get("keyring") or {}
    section("Sign-in storage")
    field("Keyring", keyring.get("backend"))
    field("Remembered", _yes(keyring.get("persistent")))

    paths = report.get("paths") or {}
    section("Folders")
    field("Data", paths.get("data"))
    field("Settings", paths.get("config"))
    field("Logs", paths.get("log"))

    log = report.get("log") or {}
    section(f"Log ({log.get('file')}, last lines)")
    lines.extend(log.get("tail") or ["(empty)"])
    return "\n".join(lines) + "\n"
