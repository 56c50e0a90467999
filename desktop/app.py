"""``creditdesk``: the desktop app; ``creditdesk --diagnostics``; ``--self-test``; ``--version``."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from desktop.core import build_config
from desktop.core.settings import AppPaths, InvalidBackendUrl, resolve_backend_url

if TYPE_CHECKING:
    from desktop.qt.main_window import MainWindow

log = logging.getLogger("desktop")


def version() -> str:
    from desktop.core.version import package_version

    # An installed bundle carries no package metadata: its build baked the version in.
    return build_config.current().version or package_version("creditdesk") or "unknown"


class _VersionAction(argparse.Action):
    """``--version``, reading the installed version only when asked (not at every start)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(f"creditdesk {version()}")
        parser.exit()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="creditdesk", description="Buy and keep track of prepaid credits.")
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--backend", metavar="URL",
                        help="use the backend at URL (also CREDITDESK_BACKEND_URL) instead of the bundled one")
    parser.add_argument("--diagnostics", action="store_true",
                        help="print the support diagnostics report as JSON and exit, without a window")
    parser.add_argument("--self-test", action="store_true",
                        help="check that this installation can run (offscreen start, Qt plugins, backend, data "
                             "folder), one line a check; exit 0 when all pass, 1 otherwise")
    parser.add_argument("--update", action="store_true",
                        help="check the update server now and install a newer version (it runs from the next start) "
                             "unless a purchase is in flight; exit 0 when up to date or installed, 1 otherwise")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = build_config.current()
    try:
        backend_url = resolve_backend_url(args.backend, default=config.backend_url)
    except InvalidBackendUrl as exc:
        print(f"creditdesk: {exc}", file=sys.stderr)
        return 2
    if args.self_test:
        return self_test(AppPaths.default(), backend_url, config)
    if args.update:
        return update_now(AppPaths.default().ensure(), config)
    if backend_url is None and not config.bundles_backend:
        print(f"creditdesk: this build of {config.app_name} names no backend and bundles none: start it with "
              "--backend URL (or set CREDITDESK_BACKEND_URL).", file=sys.stderr)
        return 2
    paths = AppPaths.default().ensure()
    if args.diagnostics:
        return print_diagnostics(paths, backend_url)
    return run_app(paths, backend_url)


def self_test(paths: AppPaths, backend_url: str | None, config: build_config.BuildConfig) -> int:
    """``--self-test``: one line a check on stdout, always offscreen (no window shows); 0 when none failed."""
    import os

    from desktop.core.self_test import CheckResult, check_backend, check_data_folder, run_checks

    os.environ["QT_QPA_PLATFORM"] = "offscreen"

    def start_offscreen() -> CheckResult:
        from desktop.qt.platform_check import check_offscreen_start

        return check_offscreen_start()

    def plugins() -> CheckResult:
        from desktop.qt.platform_check import check_platform_plugins

        return check_platform_plugins()

    frozen = " (installed bundle)" if getattr(sys, "frozen", False) else ""
    print(f"{config.app_name} {version()} self-test{frozen}: backend {backend_url or config.describe_backend()}",
          flush=True)
    # The backend's check (which may start the bundled backend: seconds) runs on a worker, meanwhile the Qt checks
    # run on the main thread, which never waits on the network.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="creditdesk-self-test") as pool:
        backend = pool.submit(check_backend, backend_url, config)
        return run_checks([("start offscreen", start_offscreen), ("qt platform plugins", plugins),
                           ("data folder", lambda: check_data_folder(paths)), ("backend health", backend.result)],
                          sys.stdout)


def update_now(paths: AppPaths, config: build_config.BuildConfig) -> int:
    """``--update``: what the app's updater does, asked from a terminal (asking is agreeing)."""
    from desktop.core import updates

    if not config.update_url or not config.version:
        print(f"creditdesk: this build of {config.app_name} names no update server", file=sys.stderr)
        return 2
    layout = updates.UpdateLayout.under(paths.data_dir)
    updater = updates.Updater(layout, config.update_url, config.version, updates.trusted_root_path())
    outcome = updater.check()
    held_back = updates.UpdateState.load(layout.state_file).held_back
    step = updates.decide(outcome, config.version, held_back, user_agrees=True,
                          purchase_in_flight=updates.purchases_in_flight(paths.purchase_records_file))
    offer = outcome.offer
    if step is updates.Step.REFUSE:
        print(f"creditdesk: {outcome.refused}", file=sys.stderr)
        return 1
    if step is updates.Step.NOTHING:
        if outcome.unavailable:
            print(f"creditdesk: {outcome.unavailable}", file=sys.stderr)
            return 1
        if offer is not None and offer.version in held_back:
            print(f"Version {offer.version} was set aside (reverted from); you have {config.version}.")
        else:
            print(f"You have the newest version ({config.version}).")
        return 0
    assert offer is not None
    if step is updates.Step.WAIT:
        print(f"creditdesk: version {offer.version} is available, but a purchase is in flight: update once it has "
              "ended", file=sys.stderr)
        return 1
    print(f"Version {offer.version} is available (you have {config.version}). What is new:\n"
          f"{offer.notes or '(no notes)'}", flush=True)
    try:
        updater.install(offer)
    except updates.UpdateError as exc:
        print(f"creditdesk: {exc}", file=sys.stderr)
        return 1
    print(f"Version {offer.version} is installed; it runs from the next start.")
    return 0


def print_diagnostics(paths: AppPaths, backend_url: str | None) -> int:
    """The same report as the panel, for the account signed in on this machine; no window, no Qt.

    It reports on the backend the app uses: the configured one, or the bundled backend the running app has
    started (found through the data folder), or else the bundled backend started for the report, on the same
    database. The account is the one last signed in there, if its kept sign-in still works."""
    from desktop.core.bundled_backend import BundledBackend, BundledBackendError, running_url
    from desktop.core.diagnostics import build_report, errors_from_log, report_json
    from desktop.core.identity import BackendIdentity
    from desktop.core.purchase_records import PurchaseRecords
    from desktop.core.settings import SettingsStore
    from desktop.core.signin import legacy_bundled_names, restore_sign_in
    from desktop.core.tokens import TokenStore

    started: BundledBackend | None = None
    errors: list[str] = errors_from_log(paths.log_file)
    if backend_url is None:
        bundled = BundledBackend(paths.data_dir, paths.log_dir)
        identity = BackendIdentity.for_bundled(bundled.db_path)
        backend_url = running_url(paths.data_dir)
        if backend_url is None:
            started = bundled
            try:
                backend_url = bundled.start()
            except BundledBackendError as exc:
                errors.append(str(exc))
    else:
        identity = BackendIdentity.for_url(backend_url)
    purchase_records = PurchaseRecords(paths.purchase_records_file)
    tokens = TokenStore(index_path=paths.keyring_index_file)
    try:
        email = SettingsStore(paths.settings_file).load().email_for(identity.key)
        token = None
        if email and backend_url:
            try:
                legacy = legacy_bundled_names(purchase_records.all(), identity.key) if identity.bundled else set()
                restored = restore_sign_in(backend_url, identity.key, email, tokens, legacy)
                token = restored.token if restored is not None else None
            except Exception as exc:  # the report must come out whatever happens
                errors.append(f"could not check the kept sign-in: {exc}")
        report = build_report(backend_url=backend_url, identity=identity, bundled=identity.bundled,
                              account_email=email if token else None, token=token, token_store=tokens,
                              paths=paths, purchase_records=purchase_records, errors=errors, log_file=paths.log_file,
                              signed_out_email=None if token else email)
    finally:
        if started is not None:
            started.stop()
    print(report_json(report))
    return 0


def build_window(paths: AppPaths, backend_url: str | None, opener: Callable[[str, str], bool] | None = None, *,
                 poll_first_delay: float = 2.0, poll_max_delay: float = 30.0, **controller_options: Any,
                 ) -> MainWindow:
    """The app's window and controller, with logging to the user's log file (not started yet; the file opens
    after the window's first paint)."""
    from desktop.core.browser import open_in_browser
    from desktop.core.logs import open_log_file, setup_logging
    from desktop.core.settings import SettingsStore
    from desktop.qt.controller import AppController
    from desktop.qt.main_window import MainWindow

    recent = setup_logging(paths.log_file, open_file=False)
    controller = AppController(paths, backend_url=backend_url, opener=opener or open_in_browser,
                               recent_errors=recent, poll=(poll_first_delay, poll_max_delay), **controller_options)
    # The one read of the app's files on the GUI thread, before the window shows: where it was last time.
    geometry = SettingsStore(paths.settings_file).load().window_geometry
    window = MainWindow(controller, geometry)
    window.after_paint.load("logging.handlers")
    window.after_paint.add(lambda: open_log_file(paths.log_file))
    return window


# The X11 libraries Qt's xcb platform plugin loads (by their sonames), and the Debian/Ubuntu packages that hold them.
XCB_LIBRARIES = {"libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
                 "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0"}


def _loadable(soname: str) -> bool:
    """Whether the dynamic linker finds a library (as Qt will load it; quick, unlike ctypes.util's search)."""
    import ctypes

    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_display_libraries() -> list[str]:
    """On Linux under X11, the system packages Qt needs and does not find (Qt itself would just abort)."""
    import os

    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY") or platform not in ("", "xcb"):
        return []
    return [package for library, package in XCB_LIBRARIES.items() if not _loadable(library)]


def run_app(paths: AppPaths, backend_url: str | None) -> int:
    missing = missing_display_libraries()
    if missing:
        print("creditdesk: Qt needs system libraries that are not installed. On Debian or Ubuntu:\n"
              f"    sudo apt install {' '.join(missing)}", file=sys.stderr)
        return 1
    # Up to its first paint the app makes objects by the ten thousand (Qt's types, the window, the controller) and
    # almost no garbage: the cyclic garbage collector's rounds over them are left out until the paint (then it
    # runs again, over what comes after: start-up's objects are frozen out of its sight, as the backend does).
    gc.disable()
    from PySide6.QtCore import QLocale, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.qt.single_instance import SingleInstance

    app = cast(QApplication, QApplication.instance() or QApplication(sys.argv))
    instance = SingleInstance(paths.lock_file)
    if not instance.acquire():
        gc.enable()
        if instance.activate_running():
            print("creditdesk: Creditdesk is already running; its window was brought to the front.",
                  file=sys.stderr)
            return 0
        print(f"creditdesk: Creditdesk is already running (process {instance.holder or '?'}) but did not answer. "
              "Close it, or end that process, and start again.", file=sys.stderr)
        return 1
    if QLocale.system().language() == QLocale.Language.C:  # no LANG set: write numbers and money as en_US does
        QLocale.setDefault(QLocale(QLocale.Language.English, QLocale.Country.UnitedStates))
    from desktop.qt.main_window import app_icon

    app.setApplicationName("Creditdesk")
    app.setApplicationDisplayName(build_config.current().app_name)
    app.setOrganizationName("Creditdesk")
    app.setDesktopFileName("creditdesk")
    app.setWindowIcon(app_icon())
    window = build_window(paths, backend_url)
    instance.activated.connect(window.bring_to_front)
    window.after_paint.load("PySide6.QtNetwork")
    window.after_paint.add(instance.listen)  # a launch before then waits for it (activate_running)
    window.after_paint.add(_collect_garbage_again)
    # The bundled backend starts on a worker, but the worker's Python (imports, spawning) would hold the GIL
    # while the window paints: it starts right after, before the rest of the window is built.
    window.after_paint.add(window.controller.start, first=True)
    window.show()
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
        gc.enable()
        window.controller.shutdown()
        instance.release()


def _collect_garbage_again() -> None:
    gc.freeze()
    gc.enable()
