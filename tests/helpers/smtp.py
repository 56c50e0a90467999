"""A small SMTP server on loopback for tests: it speaks enough of RFC 5321 (EHLO, AUTH PLAIN and LOGIN, MAIL,
RCPT, DATA, RSET, NOOP, QUIT) for smtplib, keeps each message it receives, and can be told to refuse mail or to
hold each conversation (before its greeting) until released.

It offers no STARTTLS: a client that insists on it (Creditdesk's default) fails to send, as it must.
"""

from __future__ import annotations

import base64
import socketserver
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    login: tuple[str, str] | None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _State:
    received: list[Received] = field(default_factory=list)
    refuse_with: int | None = None  # a reply code for MAIL FROM (such as 451), or None to accept
    credentials: tuple[str, str] | None = None  # required when set
    lock: threading.Lock = field(default_factory=threading.Lock)
    go: threading.Event = field(default_factory=threading.Event)  # cleared: conversations wait before the greeting
    holding: threading.Event = field(default_factory=threading.Event)  # set once a conversation waits for ``go``

    def __post_init__(self) -> None:
        self.go.set()


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        state = self.server.state
        if not state.go.is_set():
            state.holding.set()
            state.go.wait(30)
        self.reply("220 test SMTP ready")
        sender, recipients, login = "", [], None
        while line := self.rfile.readline():
            command = line.decode(errors="replace").strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-test greets you")
                self.reply("250 AUTH PLAIN LOGIN")
            elif verb == "AUTH":
                login = self._auth(command)
                if login is None or (state.credentials is not None and login != state.credentials):
                    self.reply("535 5.7.8 authentication failed")
                    login = None
                else:
                    self.reply("235 2.7.0 authenticated")
            elif verb == "MAIL":
                if state.refuse_with is not None:
                    self.reply(f"{state.refuse_with} 4.3.0 try again later")
                    continue
                if state.credentials is not None and login is None:
                    self.reply("530 5.7.0 authentication required")
                    continue
                sender, recipients = command.split(":", 1)[1].strip().strip("<>").split(">")[0], []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                data = bytearray()
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                with state.lock:
                    state.received.append(Received(sender, recipients, bytes(data), login))
                self.reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 5.5.2 command not implemented")

    def _auth(self, command: str) -> tuple[str, str] | None:
        parts = command.split()
        mechanism = parts[1].upper() if len(parts) > 1 else ""
        if mechanism == "PLAIN":
            if len(parts) > 2:
                encoded = parts[2]
            else:
                self.reply("334 ")
                encoded = self.rfile.readline().decode().strip()
            _, user, password = base64.b64decode(encoded).decode().split("\0")
            return user, password
        if mechanism == "LOGIN":
            self.reply("334 " + base64.b64encode(b"Username:").decode())
            user = base64.b64decode(self.rfile.readline().strip()).decode()
            self.reply("334 " + base64.b64encode(b"Password:").decode())
            password = base64.b64decode(self.rfile.readline().strip()).decode()
            return user, password
        return None


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: _State


class SmtpServer:
    """``with SmtpServer() as smtp:`` listens on ``127.0.0.1:smtp.port``; ``smtp.received`` holds what came."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State(credentials=credentials)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def received(self) -> list[Received]:
        with self._server.state.lock:
            return list(self._server.state.received)

    def refuse(self, code: int | None) -> None:
        """Answer MAIL FROM with ``code`` (a 4xx: a passing failure) from now on; None accepts again."""
        self._server.state.refuse_with = code

    def hold(self) -> None:
        """Keep each new conversation waiting before the server's greeting, until :meth:`release`."""
        self._server.state.holding.clear()
        self._server.state.go.clear()

    def wait_until_holding(self, timeout: float = 10) -> bool:
        """Whether a client has connected and is being held (waits for one up to ``timeout``)."""
        return self._server.state.holding.wait(timeout)

    def release(self) -> None:
        self._server.state.go.set()

    def __enter__(self) -> SmtpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
