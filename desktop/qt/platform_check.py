"""The self-test's Qt checks (``creditdesk --self-test``): the app starts offscreen with its own windows' code, and
Qt's platform plugins load, with the system libraries they need.

A frozen bundle that left out a module, a resource or a Qt library fails here with its name, rather than on the
user's desktop with a bare "could not load the Qt platform plugin".
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QPluginLoader, qVersion
from PySide6.QtWidgets import QApplication, QMainWindow

from desktop.core.self_test import CheckResult, failed, ok

# The platform plugins a desktop session needs on each system (offscreen is what the self-test itself runs on).
REQUIRED_PLATFORMS = {"linux": ("offscreen", "xcb"), "darwin": ("offscreen", "cocoa"),
                      "win32": ("offscreen", "windows")}
_SUFFIXES = (".so", ".dylib", ".dll")


def application() -> QApplication:
    """The running QApplication, or a new one (on the platform QT_QPA_PLATFORM names: the caller sets offscreen)."""
    existing = QApplication.instance()
    if existing is not None:
        return existing  # type: ignore[return-value]
    return QApplication(sys.argv[:1])


def app_modules() -> list[str]:
    """Every module of the app's Qt layer, imported: what the windows need is in the installation."""
    import desktop.qt

    names = sorted(f"desktop.qt.{info.name}" for info in pkgutil.iter_modules(desktop.qt.__path__))
    for name in names:
        importlib.import_module(name)
    return names


def check_offscreen_start() -> CheckResult:
    """A QApplication on the offscreen platform, the app's modules imported, its icon loaded, a window painted."""
    name = "start offscreen"
    app = application()
    modules = app_modules()
    if not modules:
        return failed(name, "the app's Qt modules are not in this installation")
    from desktop.qt.main_window import app_icon

    icon = app_icon()
    if icon.pixmap(32, 32).isNull():
        return failed(name, "the app's icon did not load (resources/icons/creditdesk.png is missing or unreadable)")
    window = QMainWindow()
    try:
        window.setWindowIcon(icon)
        window.resize(320, 200)
        window.show()
        app.processEvents()
        if window.grab().isNull():
            return failed(name, f"a window did not paint on the {app.platformName()} platform")
    finally:
        window.close()
        window.deleteLater()
    return ok(name, f"Qt {qVersion()} on {app.platformName()}, {len(modules)} app modules")


def platform_plugins() -> dict[str, Path]:
    """The platform plugins Qt can find, by name (``xcb`` for ``libqxcb.so``)."""
    found: dict[str, Path] = {}
    for folder in QCoreApplication.libraryPaths():
        platforms = Path(folder) / "platforms"
        if not platforms.is_dir():
            continue
        for path in sorted(platforms.iterdir()):
            if path.suffix in _SUFFIXES:
                stem = path.stem.removeprefix("lib")
                found.setdefault(stem.removeprefix("q"), path)
    return found


def check_platform_plugins(required: tuple[str, ...] | None = None) -> CheckResult:
    """Each required platform plugin loads, with the libraries it links (a missing system library is named)."""
    name = "qt platform plugins"
    application()
    wanted = required if required is not None else REQUIRED_PLATFORMS.get(sys.platform, ("offscreen",))
    plugins = platform_plugins()
    problems: list[str] = []
    for platform in wanted:
        path = plugins.get(platform)
        if path is None:
            problems.append(f"{platform}: not found in {', '.join(QCoreApplication.libraryPaths()) or 'no folder'}")
            continue
        loader = QPluginLoader(str(path))
        if not loader.load():
            problems.append(f"{platform}: {loader.errorString()}")
    if problems:
        return failed(name, "; ".join(problems))
    return ok(name, ", ".join(wanted) + f" load (of {len(plugins)}: {', '.join(sorted(plugins))})")
