"""One app per data folder: a second launch brings the first one's window to the front and exits.

The first instance holds a ``QLockFile`` in the data folder (a lock left by a crashed instance is taken over:
its process is gone) and listens on a ``QLocalServer`` named after that folder. A second launch finds the lock
held, connects to the server and asks it to come to the front. Two instances would otherwise run two bundled
backends on one database and show each other stale figures.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger("desktop.instance")

ACTIVATE = b"activate\n"


def server_name(lock_path: Path) -> str:
    """A local socket name per data folder and user (sockets live in a shared folder on Unix)."""
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "")
    digest = hashlib.sha256(f"{user}:{Path(lock_path).resolve()}".encode()).hexdigest()[:20]
    return f"creditdesk-{digest}"


class SingleInstance(QObject):
    activated = Signal()  # a second launch asked this instance to come to the front

    def __init__(self, lock_path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.lock_path = Path(lock_path)
        self.name = server_name(self.lock_path)
        self._lock = QLockFile(str(self.lock_path))
        self._lock.setStaleLockTime(0)  # stale only when its process is gone, however old
        self._server: QLocalServer | None = None
        self.holder: int | None = None

    def acquire(self) -> bool:
        """Become the instance; False when another one runs (``holder`` is its process id)."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        if not self._lock.tryLock(200):
            info = self._lock.getLockInfo()  # PySide6: (pid, hostname, appname)
            pid = info[0] if isinstance(info, tuple) and info else None
            self.holder = pid if isinstance(pid, int) and pid > 0 else None
            return False
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        QLocalServer.removeServer(self.name)  # a socket file left by a crashed instance; we hold the lock
        if not server.listen(self.name):
            log.warning("cannot listen for other launches (%s); they will say the app is running",
                        server.errorString())
        server.newConnection.connect(self._accept)
        self._server = server
        return True

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
        """Ask the running instance to come to the front; whether it said it did."""
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(timeout_ms):
            return False
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
