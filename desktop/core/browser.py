"""Opening a URL in the user's browser, quietly, and knowing when that failed.

On Linux and the BSDs the desktop's ``xdg-open`` is run with its output thrown away: whatever it starts (a
browser that logs to stderr, say) never writes into the terminal Creditdesk was started from. ``xdg-open`` exits
non-zero at once when it cannot open anything; when it is still running after ``wait`` seconds, the browser is
up (some desktops keep ``xdg-open`` waiting on it). Elsewhere Python's ``webbrowser`` asks the OS (``open`` on
macOS, the shell on Windows), which prints nothing.

Blocking for up to ``wait`` seconds: call it on a worker thread.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger("creditdesk.browser")

_XDG = ("linux", "freebsd", "openbsd", "netbsd", "dragonfly")


def system_environment(environ: Mapping[str, str] | None = None, *, frozen: bool | None = None) -> dict[str, str]:
    """The environment for a system program (the desktop's launcher, the browser): in an installed bundle, whose
    bootloader put the bundle's libraries first in LD_LIBRARY_PATH, the user's own value again (PyInstaller keeps
    it in LD_LIBRARY_PATH_ORIG), so that the browser loads the system's libraries and not the bundle's."""
    env = dict(os.environ if environ is None else environ)
    if not (getattr(sys, "frozen", False) if frozen is None else frozen):
        return env
    original = env.pop("LD_LIBRARY_PATH_ORIG", None)
    if original:
        env["LD_LIBRARY_PATH"] = original
    else:
        env.pop("LD_LIBRARY_PATH", None)
    return env


def open_in_browser(url: str, what: str = "the page", *, wait: float = 3.0) -> bool:
    """Open ``url``, which is ``what`` ("the checkout page", "the documentation": the log says which failed);
    False when the system could not (then show the link so that the user can copy it)."""
    # What it needs is loaded at the first call (a purchase, on a worker), not when the app starts.
    if not sys.platform.startswith(_XDG):
        import webbrowser

        try:
            opened = bool(webbrowser.open(url))
        except webbrowser.Error as exc:
            log.warning("the browser could not be opened for %s: %s", what, exc)
            return False
        if not opened:
            log.warning("the browser could not open %s", what)
        return opened
    import shutil
    import subprocess
    import threading

    launcher = shutil.which("xdg-open")
    if launcher is None:
        log.warning("xdg-open is not installed: could not open %s", what)
        return False
    try:
        process = subprocess.Popen(  # noqa: S603 (the desktop's own launcher, with a URL we were given)
            [launcher, url], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, env=system_environment(),
        )
    except OSError as exc:
        log.warning("xdg-open could not be started to open %s: %s", what, exc)
        return False
    try:
        code = process.wait(wait)
    except subprocess.TimeoutExpired:
        # Still running: the browser is up. Reap it whenever it ends, so that it leaves no zombie.
        threading.Thread(target=process.wait, name="creditdesk-xdg-open", daemon=True).start()
        return True
    if code != 0:
        log.warning("xdg-open could not open %s (exit code %s)", what, code)
    return code == 0
