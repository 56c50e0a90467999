"""Blocking work that must not take the server's shared threads: run on a few threads of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from backend.errors import ServerBusy

T = TypeVar("T")


class BoundedWork:
    """``workers`` threads and at most ``max_waiting`` jobs queued for them; past that, ServerBusy (503).

    Waiting here costs a coroutine, not a thread: a burst of sign-ups queues without holding up the
    requests that run on the server's shared thread pool.
    """

    def __init__(self, name: str, workers: int, max_waiting: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._limit = workers + max_waiting
        self._jobs = 0
        self._lock = threading.Lock()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._jobs >= self._limit:
                raise ServerBusy(f"{self._jobs} jobs already waiting", retry_after=2)
            self._jobs += 1
        try:
            future = self._executor.submit(function, *args)
        except BaseException:
            self._finished()
            raise
        future.add_done_callback(lambda _: self._finished())
        return await asyncio.wrap_future(future)

    def _finished(self) -> None:
        with self._lock:
            self._jobs -= 1
