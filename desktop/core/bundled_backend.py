"""The bundled backend: ``python -m backend serve`` as a child process, in stub payments mode, on a loopback
port, with its database in the app's data dir. Launched by module name; never imported here. In an installed
(frozen) bundle, which has no Python to run a module with, it is the bundle's own executable with its hidden
``--serve-backend`` entry (see packaging/creditdesk_main.py).

It takes the port it had last time when that is free (so that checkout links of purchases in flight keep
working across restarts), else a free one. Where it runs is written to ``bundled-backend.json`` in the data dir,
so that ``creditdesk --diagnostics`` reports on the running one instead of starting another. If it exits when
nobody asked it to, ``on_exit`` is called (on a helper thread) with its exit code: the app restarts it.

It is also the server of its stub checkout pages and their outcome pages. So when the app goes away (quit with
a purchase in flight, :meth:`BundledBackend.release`, or killed) it keeps serving while a checkout is open, for
at most LINGER_SECONDS (``serve --linger``), so that the user can still pay and see the outcome; the next start
stops such a lingering backend and takes its port, and with it the checkout links.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING

from desktop.core._files import atomic_write_text, tail_lines
from desktop.core.build_config import SERVE_BACKEND_ARG
from resources.redaction import redact

if TYPE_CHECKING:  # subprocess and queue load where a start runs (a worker), not with the app's window
    import subprocess

log = logging.getLogger("creditdesk.bundled_backend")

LISTENING = "listening on "
LINGER_SECONDS = 30 * 60
RUNTIME_FILE = "bundled-backend.json"
CANNOT_LISTEN = "cannot listen on"
# Inherited variables that would change what the bundled backend is: Stripe mode, another public URL.
_DROPPED_PREFIXES = ("STRIPE_",)
_DROPPED = {"CREDITDESK_PUBLIC_URL", "CREDITDESK_DB", "CREDITDESK_BACKEND_URL"}


class BundledBackendError(RuntimeError):
    """The bundled backend did not start; the message says why and ends with the tail of its log."""


class BundledBackend:
    """Start with ``start()`` (blocking, up to ``startup_timeout`` s; call it on a worker), stop with ``stop()``.

    ``stop()`` may be called from another thread while ``start()`` waits: ``start()`` then raises
    BundledBackendError promptly.
    """

    def __init__(
        self, data_dir: Path, log_dir: Path | None = None, *, startup_timeout: float = 20.0,
        python: str | None = None, extra_env: Mapping[str, str] | None = None,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir) if log_dir is not None else self.data_dir
        self.db_path = self.data_dir / "backend.sqlite3"
        self.log_path = self.log_dir / "backend.log"
        self.state_path = self.data_dir / RUNTIME_FILE
        self.on_exit = on_exit
        self.starts = 0
        self.startup_timeout = startup_timeout
        self.python = python
        self.extra_env = dict(extra_env or {})
        self.url: str | None = None
        self.payments: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._stopping = threading.Event()  # the process is being stopped (by us, or after a failed start)
        self._abandoned = threading.Event()  # the caller called stop(): no more attempts
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BundledBackend(url={self.url!r}, running={self.running})"

    def __enter__(self) -> BundledBackend:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self, port: int = 0) -> list[str]:
        # --exit-with-stdin: the backend stops when our end of its stdin closes, so it never outlives the app.
        return [*backend_launcher(self.python), "serve", "--host", "127.0.0.1", "--port", str(port),
                "--exit-with-stdin", "--linger", str(LINGER_SECONDS)]

    def last_port(self) -> int:
        """The port it had last time (0 if unknown)."""
        state = read_state(self.state_path)
        port = state.get("port")
        return port if isinstance(port, int) and 0 < port < 65536 else 0

    @property
    def outbox(self) -> Path | None:
        """The folder the bundled backend writes its mail into (password reset codes), or None when it sends mail
        through an SMTP server (CREDITDESK_SMTP_HOST in the environment)."""
        env = self.environment()
        if env.get("CREDITDESK_SMTP_HOST", "").strip():
            return None
        folder = env.get("CREDITDESK_MAIL_OUTBOX", "").strip()
        return Path(folder).expanduser() if folder else self.db_path.parent / "outbox"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED}
        env.update(self.extra_env)
        env["CREDITDESK_DB"] = str(self.db_path)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self) -> str:
        """Start the backend and wait until it answers ``/api/health``; returns its URL. Again after it exited
        (or was stopped): a restart, on the same port if that is free."""
        self._abandoned.clear()
        self._stop_lingering()
        port = self.last_port()
        try:
            return self._start(port)
        except BundledBackendError as exc:
            if not port or CANNOT_LISTEN not in str(exc) or self._abandoned.is_set():
                raise
            log.info("port %s is taken now; the bundled backend takes another", port)
            return self._start(0)

    def _start(self, port: int) -> str:
        import subprocess

        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                raise RuntimeError("this BundledBackend is already running")
            self._release()
            self._stopping.clear()
            self.url = None
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a", encoding="utf-8")
            self._log.write(f"--- starting the bundled backend at {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n")
            self._log.flush()
            try:
                self._proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                    self.command(port), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                    text=True, encoding="utf-8", errors="replace", env=self.environment(),
                )
            except OSError as exc:
                self._close_log()
                raise BundledBackendError(f"Could not start the bundled backend: {exc}") from None
            proc = self._proc
        deadline = time.monotonic() + self.startup_timeout
        try:
            line = self._first_line(deadline)
            if LISTENING not in line:
                raise self._failure(f"it said {line.strip()!r} instead of where it listens")
            self.url = line.split(LISTENING, 1)[1].split()[0].rstrip("/")
            if "(payments: " in line:
                self.payments = line.rsplit("(payments: ", 1)[1].split(")")[0]
            self._wait_healthy(deadline)
        except BaseException:
            self._halt()
            raise
        self.starts += 1
        write_state(self.state_path, {"url": self.url, "pid": proc.pid, "port": _port_of(self.url)})
        threading.Thread(target=self._watch, args=(proc,), name="creditdesk-backend-watch", daemon=True).start()
        log.info("bundled backend running at %s (pid %s)", self.url, self.pid)
        return self.url

    def _watch(self, proc: subprocess.Popen[str]) -> None:
        """Wait for the process to end; if nobody asked it to, say so."""
        code = proc.wait()
        if self._stopping.is_set() or proc is not self._proc:
            return
        log.warning("the bundled backend exited unexpectedly (code %s)", code)
        with contextlib.suppress(OSError):
            write_state(self.state_path, {"port": _port_of(self.url or "")})
        if self.on_exit is not None:
            try:
                self.on_exit(code)
            except Exception:
                log.exception("the bundled backend's exit handler failed")

    def _first_line(self, deadline: float) -> str:
        """The first stdout line, read on a helper thread so that a silent child cannot block us past the
        deadline (pipes cannot be polled portably). The thread then drains stdout until the child exits."""
        import queue

        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            try:
                lines.put(stdout.readline())
                for _ in stdout:
                    pass
            except (OSError, ValueError):
                lines.put("")
            finally:
                with contextlib.suppress(OSError):
                    stdout.close()

        threading.Thread(target=read, name="creditdesk-backend-stdout", daemon=True).start()
        while True:
            if self._stopping.is_set():
                raise BundledBackendError("The bundled backend was stopped while starting.")
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise self._failure(f"it did not say where it listens within {self.startup_timeout:g} s") from None
                continue
            if not line:
                code = self._proc.wait(5)
                raise self._failure(f"it exited with code {code}")
            return line

    def _wait_healthy(self, deadline: float) -> None:
        from desktop.core.api import ApiClient, ApiClientError  # the HTTP stack, on this worker only

        assert self.url is not None
        client = ApiClient(self.url, timeout=1.0, retries=0)
        try:
            while True:
                if self._stopping.is_set():
                    raise BundledBackendError("The bundled backend was stopped while starting.")
                if self._proc is not None and self._proc.poll() is not None:
                    raise self._failure(f"it exited with code {self._proc.returncode}")
                try:
                    client.health()
                    return
                except ApiClientError:
                    pass
                if time.monotonic() > deadline:
                    raise self._failure(f"it did not answer /api/health within {self.startup_timeout:g} s")
                self._stopping.wait(0.1)
        finally:
            client.close()

    def _failure(self, what: str) -> BundledBackendError:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.flush()
        log_tail = redact("\n".join(tail_lines(self.log_path, 20)))
        message = f"The bundled Creditdesk backend did not start: {what}. Its log is {self.log_path}."
        if log_tail:
            message += f"\nLast lines of the log:\n{log_tail}"
        return BundledBackendError(message)

    def release(self) -> None:
        """Let it go as the app quits with purchases in flight: it stops by itself once no checkout is open (at
        once if none is), else serves them for a while (see the module's docstring). Idempotent."""
        self._abandoned.set()
        self._stopping.set()
        with self._lock:
            proc = self._proc
            if proc is not None and proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            self._close_log()
        if proc is not None:
            log.info("bundled backend released (pid %s): it stops once no checkout is open", proc.pid)

    def _stop_lingering(self) -> None:
        """Stop a backend an earlier run of the app left serving open checkouts, so as to take its port."""
        state = read_state(self.state_path)
        pid = state.get("pid")
        if not isinstance(pid, int) or (self._proc is not None and self._proc.pid == pid and self.running):
            return
        if not _is_bundled_backend(pid, self.db_path):
            return
        log.info("stopping the bundled backend an earlier run left serving checkouts (pid %s)", pid)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate (SIGTERM), then kill after ``timeout`` s. Idempotent; safe from any thread."""
        self._abandoned.set()
        self._halt(timeout)

    def _halt(self, timeout: float = 5.0) -> None:
        import subprocess

        self._stopping.set()
        with self._lock:
            proc = self._proc
            if proc is not None and proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # asks it to stop (--exit-with-stdin)
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(min(timeout, 2.0))
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("the bundled backend did not stop within %s s; killing it", timeout)
                    with contextlib.suppress(OSError):
                        proc.kill()
                    proc.wait()
            if proc is not None and self.url:
                with contextlib.suppress(OSError):
                    write_state(self.state_path, {"port": _port_of(self.url)})
            self._close_log()

    def _release(self) -> None:
        """Forget an earlier process (it has exited): close our ends of its pipes."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None


def backend_launcher(python: str | None = None) -> list[str]:
    """How this installation runs ``creditdesk-backend``: ``python -m backend`` from source (with ``python``, or
    the running interpreter), the bundle's own executable with SERVE_BACKEND_ARG when frozen."""
    if python is None and getattr(sys, "frozen", False):
        return [sys.executable, SERVE_BACKEND_ARG]
    return [python or sys.executable, "-m", "backend"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, under another user
    with contextlib.suppress(OSError):  # our own child (the app restarted in one process): reap it
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    return True


def _is_bundled_backend(pid: int, db_path: Path) -> bool:
    """Whether process ``pid`` is a bundled backend serving ``db_path`` (so that a pid reused since by another
    program is left alone). Read from /proc where there is one; elsewhere, never assumed."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    launched = b"backend" in argv or SERVE_BACKEND_ARG.encode() in argv  # from source, or a frozen bundle
    return (launched and b"serve" in argv and b"--exit-with-stdin" in argv
            and f"CREDITDESK_DB={db_path}".encode() in environ)


def _port_of(url: str) -> int:
    try:
        return int(url.rsplit(":", 1)[1].split("/")[0])
    except (IndexError, ValueError):
        return 0


def read_state(path: Path) -> dict[str, object]:
    """``bundled-backend.json``: ``{"url", "pid", "port"}`` while it runs, ``{"port"}`` after; {} if unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(path: Path, state: dict[str, object]) -> None:
    atomic_write_text(Path(path), json.dumps(state) + "\n")


def running_url(data_dir: Path) -> str | None:
    """The URL of the bundled backend an app instance runs now on ``data_dir`` (it may not answer), or None."""
    state = read_state(Path(data_dir) / RUNTIME_FILE)
    url, pid = state.get("url"), state.get("pid")
    if not isinstance(url, str) or not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return None
    return url
