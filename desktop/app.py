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


# The X11 libraries Qt's xcb platform plugin loads, and the Debian/Ubuntu packages that hold them.
XCB_LIBRARIES = {"xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1",
                 "xkbcommon-x11": "libxkbcommon-x11-0"}


def missing_display_libraries() -> list[str]:
    """On Linux under X11, the system packages Qt needs and does not find (Qt itself would just abort)."""
    import ctypes.util
    import os

    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY") or platform not in ("", "xcb"):
        return []
    return [package for library, package in XCB_LIBRARIES.items() if ctypes.util.find_library(library) is None]


def run_app(paths: AppPaths, backend_url: str | None) -> int:
    missing = missing_display_libraries()
    if missing:
        print("creditdesk: Qt needs system libraries that are not installed. On Debian or Ubuntu:\n"
              f"    sudo apt install {' '.join(missing)}", file=sys.stderr)
        return 1
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
