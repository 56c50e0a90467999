"""The rate limiter: hit counts, check only looks, and both go on in memory while Redis does not answer."""

from __future__ import annotations

import pytest

from backend.errors import RateLimited
from backend.ratelimit import RateLimiter


@pytest.mark.parametrize("storage", ["memory", "redis", "redis-down"])
@pytest.mark.subprocess
def test_check_counts_nothing_and_refuses_once_hits_fill_the_window(storage: str,
                                                                    request: pytest.FixtureRequest) -> None:
    redis_url = {"memory": None, "redis-down": "redis://127.0.0.1:9/0"}.get(storage)
    if storage == "redis":
        redis_server = request.getfixturevalue("redis_server")
        redis_server.flush()
        redis_url = redis_server.url
    limiter = RateLimiter(redis_url)
    for _ in range(5):
        limiter.check("2/minute;3/hour", "key")  # looking, however often, fills nothing
    limiter.hit("2/minute;3/hour", "key")
    limiter.check("2/minute;3/hour", "key")
    limiter.hit("2/minute;3/hour", "key")
    with pytest.raises(RateLimited) as refused:
        limiter.check("2/minute;3/hour", "key")
    assert 1 <= refused.value.retry_after <= 60
    limiter.check("2/minute;3/hour", "another key")  # per key
    with pytest.raises(RateLimited):
        limiter.hit("2/minute;3/hour", "key")
