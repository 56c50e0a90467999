"""``creditdesk``: the desktop app, and ``creditdesk --diagnostics``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from desktop.core.settings import AppPaths, InvalidBackendUrl, resolve_backend_url

if TYPE_CHECKING:
    from desktop.qt.main_window import MainWindow

log = logging.getLogger("desktop")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="creditdesk", description="Buy and keep track of prepaid credits.")
    parser.add_argument("--backend", metavar="URL",
                        help="use the backend at URL (also CREDITDESK_BACKEND_URL) instead of the bundled one")
    parser.add_argument("--diagnostics", action="store_true",
                        help="print the support diagnostics report as JSON and exit, without a window")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        backend_url = resolve_backend_url(args.backend)
    except InvalidBackendUrl as exc:
        print(f"creditdesk: {exc}", file=sys.stderr)
        return 2
    paths = AppPaths.default().ensure()
    if args.diagnostics:
        return print_diagnostics(paths, backend_url)
    return run_app(paths, backend_url)


def print_diagnostics(paths: AppPaths, backend_url: str | None) -> int:
    """The same report as the panel, for the signed-in account on this machine; no window, no Qt."""
    from desktop.core.bundled_backend import BundledBackend, BundledBackendError
    from desktop.core.diagnostics import build_report, report_json
    from desktop.core.pending import PendingPurchases
    from desktop.core.settings import SettingsStore
    from desktop.core.tokens import TokenStore

    bundled = None
    errors: list[str] = []
    if backend_url is None:
        bundled = BundledBackend(paths.data_dir, paths.log_dir)
        try:
            backend_url = bundled.start()
        except BundledBackendError as exc:
            errors.append(str(exc))
    try:
        email = SettingsStore(paths.settings_file).load().last_email
        tokens = TokenStore()
        signed_in = email if email and backend_url and tokens.load(backend_url, email) else None
        report = build_report(backend_url=backend_url, bundled=bundled is not None, account_email=signed_in,
                              token_store=tokens, paths=paths, pending=PendingPurchases(paths.pending_file),
                              errors=errors, log_file=paths.log_file)
    finally:
        if bundled is not None:
            bundled.stop()
    print(report_json(report))
    return 0


def build_window(paths: AppPaths, backend_url: str | None, opener: Callable[[str], bool] | None = None,
                 **window_options: Any) -> MainWindow:
    """The app's window and controller, with logging to the user's log file (not started yet)."""
    from desktop.core.logs import setup_logging
    from desktop.qt.controller import AppController
    from desktop.qt.main_window import MainWindow

    recent = setup_logging(paths.log_file)
    controller = AppController(paths, backend_url=backend_url, recent_errors=recent)
    return MainWindow(controller, opener, **window_options)


def run_app(paths: AppPaths, backend_url: str | None) -> int:
    from PySide6.QtCore import QLocale, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.qt.main_window import app_icon

    app = QApplication.instance() or QApplication(sys.argv)
    if QLocale.system().language() == QLocale.Language.C:  # no LANG set: write numbers and money as en_US does
        QLocale.setDefault(QLocale(QLocale.Language.English, QLocale.Country.UnitedStates))
    app.setApplicationName("Creditdesk")
    app.setOrganizationName("Creditdesk")
    app.setDesktopFileName("creditdesk")
    app.setWindowIcon(app_icon())
    window = build_window(paths, backend_url)
    window.show()
    window.controller.start()
    # Ctrl+C in the terminal (or a TERM from the session) closes the window properly, so that a purchase in
    # flight is remembered. Python only runs signal handlers between bytecodes: a timer gives it some.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: window.close())
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start(250)
    try:
        return app.exec()
    finally:
        window.controller.shutdown()
