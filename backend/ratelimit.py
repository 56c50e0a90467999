"""Rate limits on top of the `limits` package (moving windows, kept in memory)."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from backend.errors import RateLimited


class RateLimiter:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, limit: str, *keys: str) -> None:
        """Count one request against ``limit`` for ``keys``; raise RateLimited when over it."""
        item = parse(limit)
        if self._limiter.hit(item, *keys):
            return
        reset_at = self._limiter.get_window_stats(item, *keys).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(f"over {limit} for {keys[0]}", retry_after)
