"""Rate limits on top of the `limits` package (moving windows, kept in memory)."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from backend.errors import ApiError


class RateLimiter:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, limit: str, *keys: str) -> None:
        """Count one request against ``limit`` for ``keys``; raise a 429 ApiError when over it."""
        item = parse(limit)
        if self._limiter.hit(item, *keys):
            return
        reset_at = self._limiter.get_window_stats(item, *keys).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise ApiError(
            429, "rate_limited", f"Too many requests; try again in {retry_after} seconds.",
            {"Retry-After": str(retry_after)},
        )
