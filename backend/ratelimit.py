"""Rate limits on top of the `limits` package (moving windows, kept in memory)."""

from __future__ import annotations

import math
import time

from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from backend.errors import RateLimited


class RateLimiter:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, limits: str, *keys: str) -> None:
        """Count one request against ``limits`` for ``keys``; raise RateLimited when over any of them.

        ``limits`` is one window or several stacked, ``"5/minute;20/hour"``: the longer windows make the
        wait grow for a client that keeps going.
        """
        over = [item for item in parse_many(limits) if not self._limiter.hit(item, *keys)]
        if not over:
            return
        reset_at = max(self._limiter.get_window_stats(item, *keys).reset_time for item in over)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(f"over {limits} for {keys[0]}", retry_after)

    def clear(self, limits: str, *keys: str) -> None:
        """Forget what was counted for ``keys`` (a right password ends a run of wrong ones)."""
        for item in parse_many(limits):
            self._limiter.clear(item, *keys)
