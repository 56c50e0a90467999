"""One app per data folder: a second launch brings the first one's window to the front and exits.

The first instance holds a ``QLockFile`` in the data folder and listens on a ``QLocalServer`` named after
that folder (from just after its window's first paint: Qt's network module loads then, not before; a second
launch meanwhile tries again for a while). A lock left by a crashed instance is taken over (its process is
gone), and so is one that names no running Creditdesk of this machine: empty, garbage, another host's, or a
process id now used by another program. A second launch finds the lock held, connects to the server and asks
it to come to the front. Two instances would otherwise run two bundled backends on one database and show each
other stale figures.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QLockFile, QObject, QSysInfo, Signal

if TYPE_CHECKING:
    from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger("desktop.instance")

ACTIVATE = b"activate\n"
RETRY_SECONDS = 0.05  # between a second launch's tries to reach a first one that does not listen yet


def _this_host() -> str:
    return QSysInfo.machineHostName()


def _held_by_a_running_app(pid: object, host: str) -> bool:
    """Whether a lock's process is a Creditdesk running on this machine. An unreadable lock (empty, garbage),
    another host's, or one whose process is gone or is some other program (its id reused) is stale: keeping it
    would stop the app from ever starting. (A lock of another machine sharing the folder is not ours to honour:
    that machine's app has a backend of its own.)"""
    if not isinstance(pid, int) or pid <= 0 or host != _this_host():
        return False
    if pid == os.getpid():
        return True  # this process holds it (another SingleInstance here)
    if os.name != "posix":
        return True  # (os.kill(pid, 0) is not a probe on Windows) Qt found the process alive: trust it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's: not ours to take
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # Linux: is it a Creditdesk?
        try:
            argv = cmdline.read_bytes().decode(errors="replace").split("\x00")
        except OSError:
            return True
        return runs_the_app(argv)
    return True


def runs_the_app(argv: list[str]) -> bool:
    """Whether a command line is the app's: the ``creditdesk`` command (or a frozen Creditdesk), or ``python -m
    desktop``. Not any Python program: a process id that some other one took over is not a running app."""
    names = [os.path.basename(arg).lower() for arg in argv]
    if any(name.startswith("creditdesk") and not name.startswith("creditdesk-backend") for name in names):
        return True
    return "-mdesktop" in argv or ("-m", "desktop") in itertools.pairwise(argv)


def server_name(lock_path: Path) -> str:
    """A local socket name per data folder and user (sockets live in a shared folder on Unix)."""
    import hashlib

    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "")
    digest = hashlib.sha256(f"{user}:{Path(lock_path).resolve()}".encode()).hexdigest()[:20]
    return f"creditdesk-{digest}"


class SingleInstance(QObject):
    activated = Signal()  # a second launch asked this instance to come to the front

    def __init__(self, lock_path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.lock_path = Path(lock_path)
        self._lock = QLockFile(str(self.lock_path))
        self._lock.setStaleLockTime(0)  # stale only when its process is gone, however old
        self._server: QLocalServer | None = None
        self.holder: int | None = None

    @cached_property
    def name(self) -> str:
        """The local socket's name."""
        return server_name(self.lock_path)

    def acquire(self) -> bool:
        """Become the instance; False when another one runs (``holder`` is its process id). Then :meth:`listen`
        for the launches that follow."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        if not self._lock.tryLock(200):
            info = self._lock.getLockInfo()  # PySide6: (pid, hostname, appname)
            pid = info[0] if isinstance(info, tuple) and info else None
            host = info[1] if isinstance(info, tuple) and len(info) > 1 else ""
            if not _held_by_a_running_app(pid, host):
                log.warning("taking over a lock file that names no running Creditdesk (%s)",
                            "unreadable" if not pid else "another host" if host != _this_host() else "stale")
                with contextlib.suppress(OSError):
                    self.lock_path.unlink()
                if self._lock.tryLock(200):
                    return True
            self.holder = pid if isinstance(pid, int) and pid > 0 else None
            return False
        return True

    def listen(self) -> None:
        """Answer the launches that follow (the lock is held)."""
        from PySide6.QtNetwork import QLocalServer

        if self._server is not None:
            return
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        QLocalServer.removeServer(self.name)  # a socket file left by a crashed instance; we hold the lock
        if not server.listen(self.name):
            log.warning("cannot listen for other launches (%s); they will say the app is running",
                        server.errorString())
        server.newConnection.connect(self._accept)
        self._server = server

    def _accept(self) -> None:
        assert self._server is not None
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)
            if socket.bytesAvailable():
                self._read(socket)

    def _read(self, socket: QLocalSocket) -> None:
        data = bytes(socket.readAll().data())
        if ACTIVATE.strip() in data:
            log.info("another launch asked this window to come to the front")
            self.activated.emit()
            socket.write(b"ok\n")
            socket.flush()
        socket.disconnectFromServer()

    def activate_running(self, timeout_ms: int = 2000) -> bool:
        """Ask the running instance to come to the front; whether it said it did. One that has just started
        may not listen yet: it is tried again until ``timeout_ms``."""
        from PySide6.QtNetwork import QLocalSocket

        deadline = time.monotonic() + timeout_ms / 1000
        socket = QLocalSocket()
        while True:
            socket.connectToServer(self.name)
            if socket.waitForConnected(max(int((deadline - time.monotonic()) * 1000), 0)):
                break
            socket.abort()
            if time.monotonic() + RETRY_SECONDS >= deadline:
                return False
            time.sleep(RETRY_SECONDS)
        socket.write(ACTIVATE)
        socket.flush()
        answered = socket.waitForReadyRead(timeout_ms) and b"ok" in bytes(socket.readAll().data())
        socket.disconnectFromServer()
        return answered

    def release(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._lock.unlock()
