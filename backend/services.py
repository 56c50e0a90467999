"""The backend's parts, built once from the settings and shared by the routes."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from backend import prepared
from backend.catalogue import Catalogue
from backend.config import Settings
from backend.db import Database
from backend.errors import ServerBusy
from backend.mail import Mailer, describe, mailer
from backend.migrations import prepare
from backend.payments.base import PaymentProvider
from backend.payments.gateway import ProviderGateway
from backend.payments.stub import StubProvider
from backend.ratelimit import RateLimiter

log = logging.getLogger("creditdesk")


class Background:
    """Work that must not hold up the request that caused it (an auto top-up's charge after a spend): one thread of
    its own, in order. ``drain`` waits for what was submitted (tests, and shutting down)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="background")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("background work failed")

        future = self._executor.submit(run)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self, timeout: float = 30.0) -> None:
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.result(timeout)


class SendingQueue:
    """Mail sent after the answer that asked for it (a password reset's code), one job at a time on a thread of its
    own, in the order asked (so a person's newest mail holds their live code).

    Neither the server's shared threads (where Starlette's background tasks would run a blocking send, unbounded,
    their failures logged with their text) nor :class:`Background`: a mail server that is slow or hangs (up to the
    SMTP timeout a job) holds up no answer and no auto top-up. At most ``max_waiting`` jobs wait; past that,
    ServerBusy for every caller alike, whatever the address (a queue growing without end while the mail server
    hangs would hold every address asked for in memory). A job's failure is logged by its type, never its text
    (an SMTP or SQL error's text may quote the address). A daemon thread: stopping the server does not wait on a
    mail server that hangs; a code lost so is asked for again. ``drain`` waits for what was submitted (tests)."""

    def __init__(self, max_waiting: int = 100) -> None:
        self._jobs: queue.SimpleQueue[tuple[str, Callable[[], None]]] = queue.SimpleQueue()
        self._limit = max_waiting + 1
        self._unfinished = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, what: str, job: Callable[[], None]) -> None:
        """Run ``job`` (``what`` it sends, for the log) after the jobs before it; ServerBusy when too many wait."""
        with self._idle:
            if self._unfinished >= self._limit:
                raise ServerBusy(f"{self._unfinished} mails already waiting", retry_after=30)
            self._unfinished += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mail", daemon=True)
                self._thread.start()
        self._jobs.put((what, job))

    def _run(self) -> None:
        while True:
            what, job = self._jobs.get()
            try:
                job()
            except Exception as exc:  # its type only: its text may quote the address
                log.warning("mail: could not send %s (%s)", what, type(exc).__name__)
            finally:
                with self._idle:
                    self._unfinished -= 1
                    self._idle.notify_all()

    def drain(self, timeout: float = 30.0) -> None:
        with self._idle:
            if not self._idle.wait_for(lambda: self._unfinished == 0, timeout):
                raise TimeoutError(f"{self._unfinished} mails still waiting")


@dataclass
class Services:
    settings: Settings
    public_url: str
    db: Database
    catalogue: Catalogue
    # The payment provider (Stripe or the stub), called directly only off the request path (reconcile, the
    # admin commands, a webhook's session lookup, all on worker threads).
    provider: PaymentProvider
    limiter: RateLimiter
    # The same provider as requests call it: off the server's threads, with a breaker and a waiting room.
    gateway: ProviderGateway
    # Where password reset codes go: SMTP, or the outbox folder (backend/mail.py).
    mailer: Mailer
    # Work after a request's answer (auto top-up's charges), off the request path.
    background: Background = field(default_factory=Background)
    # Mail after a request's answer (password reset codes), off the request path.
    sending: SendingQueue = field(default_factory=SendingQueue)

    @classmethod
    def build(cls, settings: Settings, public_url: str) -> Services:
        public_url = (settings.public_url or public_url).rstrip("/")
        prepared.set_enabled(settings.prepared_statements)
        db = Database(settings.database, pool_size=settings.db_pool_size)
        prepare(db)
        catalogue = Catalogue.load(settings.packs_path)
        provider: PaymentProvider
        if settings.stripe_secret_key:
            from backend.payments.stripe_provider import StripeProvider  # the SDK only where it is used

            provider = StripeProvider(settings.stripe_secret_key, settings.stripe_api_base)
            log.info("Stripe payments mode (API at %s)", settings.stripe_api_base or "Stripe")
        else:
            provider = StubProvider(db, public_url, tax_percent=catalogue.stub_tax_percent)
            log.warning(
                "Stub payments mode: STRIPE_SECRET_KEY is not set, so checkouts are simulated on this server "
                "and no money moves."
            )
        log.info("mail goes through %s", describe(settings))
        return cls(settings, public_url, db, catalogue, provider, RateLimiter(settings.redis_url),
                   ProviderGateway(provider), mailer(settings))

    @property
    def tax_added(self) -> bool:
        """Whether checkout adds tax (CREDITDESK_AUTOMATIC_TAX; in stub mode only with a stub_tax_percent): then
        each pack's price holds it or has it on top, as its tax_behavior says."""
        return self.settings.automatic_tax and (self.stub is None or self.catalogue.stub_tax_percent > 0)

    @property
    def stub(self) -> StubProvider | None:
        return self.provider if isinstance(self.provider, StubProvider) else None
