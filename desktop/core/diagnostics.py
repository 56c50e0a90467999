"""The support diagnostics report, shared by ``creditdesk --diagnostics`` and the app's diagnostics panel.

Everything that comes from logs or errors is passed through :func:`redact`; the signed-in email is masked;
tokens, keys and passwords never appear. ``build_report`` blocks for at most about ``health_timeout`` seconds
(one ``/api/health`` call without retries): call it on a worker thread from the GUI.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from desktop.core._files import tail_lines
from desktop.core.api import ApiClient, ApiClientError
from desktop.core.pending import PendingPurchases
from desktop.core.redact import REDACTED, mask_email, redact
from desktop.core.settings import AppPaths
from desktop.core.tokens import TokenStore

__all__ = ["REDACTED", "build_report", "mask_email", "package_version", "redact", "report_json"]

REPORT_VERSION = 1


def package_version(*names: str) -> str | None:
    """The installed version of the first of ``names`` that is installed (read from metadata, never by
    importing the package: importing PySide6 here would be slow and is forbidden in the core)."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _backend_section(backend_url: str | None, bundled: bool, timeout: float) -> dict[str, Any]:
    section: dict[str, Any] = {
        "url": redact(backend_url) if backend_url else None, "bundled": bundled, "reachable": False,
        "latency_ms": None, "version": None, "payments": None, "error": None,
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


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    """Replace any known secret that slipped into any string of the report (belt and braces)."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, secrets) for v in value]
    return value


def build_report(
    *,
    backend_url: str | None,
    bundled: bool = False,
    account_email: str | None = None,
    token_store: TokenStore | None = None,
    paths: AppPaths | None = None,
    pending: PendingPurchases | None = None,
    errors: Iterable[str] = (),
    log_file: Path | None = None,
    log_lines: int = 50,
    purchases: int = 10,
    health_timeout: float = 2.0,
    known_secrets: Iterable[str | None] = (),
) -> dict[str, Any]:
    """The report as a JSON-ready dict.

    ``account_email`` is the signed-in account (None when signed out); ``errors`` the app's last error messages;
    ``log_file`` defaults to ``paths.log_file``; ``known_secrets`` (e.g. the current token) are removed from
    every string of the report on top of the pattern-based redaction.
    """
    secrets = [s for s in known_secrets if s and len(s) >= 4]
    if token_store is not None and backend_url and account_email:
        stored = token_store.load(backend_url, account_email)
        if stored:
            secrets.append(stored)
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "app": {
            "version": package_version("creditdesk") or "unknown",
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "python_executable": sys.executable,
            "qt": package_version("PySide6-Essentials", "PySide6") or "not installed",
            "os": platform.platform(),
        },
        "backend": _backend_section(backend_url, bundled, health_timeout),
        "account": {"signed_in": account_email is not None, "email": mask_email(account_email)},
        "keyring": (
            {"backend": token_store.backend_name, "persistent": token_store.persistent, "where": token_store.where}
            if token_store is not None else None
        ),
        "paths": (
            {"data": str(paths.data_dir), "config": str(paths.config_dir), "log": str(paths.log_dir)}
            if paths is not None else None
        ),
        "purchases": [],
        "errors": [redact(str(error), secrets) for error in errors],
        "log": None,
    }
    if pending is not None:
        try:
            report["purchases"] = [
                {"session_id": p.session_id, "pack": p.pack_name or p.pack_id, "credits": p.credits,
                 "status": p.status, "started_at": p.started_at, "finished_at": p.finished_at}
                for p in pending.recent(purchases)
            ]
        except Exception as exc:
            report["purchases"] = [{"error": redact(f"{type(exc).__name__}: {exc}", secrets)}]
    if log_file is None and paths is not None:
        log_file = paths.log_file
    if log_file is not None:
        report["log"] = {"file": str(log_file),
                         "tail": [redact(line, secrets) for line in tail_lines(Path(log_file), log_lines)]}
    return _scrub(report, secrets)


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)
