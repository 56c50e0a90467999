"""Rate limits on top of the `limits` package (moving windows).

Counted in this process's memory or, given ``CREDITDESK_REDIS_URL``, in Redis, shared by every replica:
then N replicas together allow what one allows.

When Redis does not answer (within :data:`REDIS_TIMEOUT_SECONDS`), each replica counts on its own in
memory and says so in its log, and tries Redis again after :data:`REDIS_RETRY_SECONDS`: the limits still
hold, per replica, so an outage of Redis neither stops sign-ins and purchases nor lets guessing run
without limit.

The `limits` package (1.5 MB) loads at the first request a limit applies to (a sign-in, a checkout, a page):
the desktop app's bundled backend, signed in already, may serve a whole session without one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING

from backend.errors import RateLimited

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger("creditdesk")

REDIS_TIMEOUT_SECONDS = 0.5
REDIS_RETRY_SECONDS = 5.0


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self._redis_url = redis_url
        self._limiters: tuple[MovingWindowRateLimiter, MovingWindowRateLimiter | None] | None = None
        self._redis_down_until = 0.0
        self._redis_answering = True
        self._lock = threading.Lock()

    @property
    def _local(self) -> MovingWindowRateLimiter:
        return self._made()[0]

    @property
    def _shared(self) -> MovingWindowRateLimiter | None:
        return self._made()[1]

    def _made(self) -> tuple[MovingWindowRateLimiter, MovingWindowRateLimiter | None]:
        """This process's memory and, when configured, Redis: made at the first use."""
        if self._limiters is None:
            with self._lock:
                if self._limiters is None:
                    from limits.storage import MemoryStorage, RedisStorage
                    from limits.strategies import MovingWindowRateLimiter

                    shared = None
                    if self._redis_url:
                        storage = RedisStorage(
                            self._redis_url, key_prefix="creditdesk", wrap_exceptions=True,
                            socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                        )
                        shared = MovingWindowRateLimiter(storage)
                    self._limiters = (MovingWindowRateLimiter(MemoryStorage()), shared)
        return self._limiters

    def _limiter(self) -> MovingWindowRateLimiter:
        """Redis when it is configured and not in a fall-back after a failure; this process's memory else."""
        if self._shared is not None and time.monotonic() >= self._redis_down_until:
            return self._shared
        return self._local

    def hit(self, limits: str, *keys: str) -> None:
        """Count one request against ``limits`` for ``keys``; raise RateLimited when over any of them.

        ``limits`` is one window or several stacked, ``"5/minute;20/hour"``: the longer windows make the
        wait grow for a client that keeps going.
        """
        self._count(limits, keys, counting=True)

    def check(self, limits: str, *keys: str) -> None:
        """Raise RateLimited when ``limits`` are already full for ``keys``, counting nothing: for a limit that
        only some outcomes count towards (:meth:`hit` after them), such as failed sign-ins."""
        self._count(limits, keys, counting=False)

    def _count(self, limits: str, keys: tuple[str, ...], *, counting: bool) -> None:
        from limits import parse_many
        from limits.errors import StorageError

        items = parse_many(limits)
        limiter = self._limiter()

        def full(on: MovingWindowRateLimiter) -> list[RateLimitItem]:
            return [item for item in items if not (on.hit(item, *keys) if counting else on.test(item, *keys))]

        try:
            over = full(limiter)
        except StorageError as exc:
            self._redis_failed(exc)
            limiter = self._local
            over = full(limiter)
        else:
            if limiter is self._shared:
                self._redis_answered()
        if not over:
            return
        retry_after = max(1, math.ceil(self._reset_at(limiter, over, keys) - time.time()))
        raise RateLimited(f"over {limits} for {keys[0]}", retry_after)

    def clear(self, limits: str, *keys: str) -> None:
        """Forget what was counted for ``keys`` (a right password ends a run of wrong ones)."""
        from limits import parse_many
        from limits.errors import StorageError

        for limiter in {self._limiter(), self._local}:
            for item in parse_many(limits):
                try:
                    limiter.clear(item, *keys)
                except StorageError as exc:
                    self._redis_failed(exc)

    @staticmethod
    def _reset_at(limiter: MovingWindowRateLimiter, over: list[RateLimitItem], keys: tuple[str, ...]) -> float:
        from limits.errors import StorageError

        try:
            return max(limiter.get_window_stats(item, *keys).reset_time for item in over)
        except StorageError:
            return time.time() + max(item.get_expiry() for item in over)

    def _redis_failed(self, exc: Exception) -> None:
        with self._lock:
            self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
            was_answering, self._redis_answering = self._redis_answering, False
        if was_answering:
            log.warning("rate limits: Redis does not answer (%s); this process counts on its own until it does",
                        type(getattr(exc, "storage_error", exc)).__name__)

    def _redis_answered(self) -> None:
        if not self._redis_answering:
            with self._lock:
                self._redis_answering = True
            log.info("rate limits: Redis answers again; the counts are shared again")
