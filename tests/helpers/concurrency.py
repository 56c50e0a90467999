"""Running the same call from many threads released at once, for the races the suite provokes on purpose."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def all_at_once(n: int, call: Callable[[int], T]) -> list[T | BaseException]:
    """``call(i)`` for i in range(n), each on its own thread, all released together by a barrier; the results
    (or the exceptions raised) in the order of ``i``."""
    barrier = threading.Barrier(n)
    results: list[T | BaseException] = [RuntimeError("not run")] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except BaseException as exc:  # the caller asserts on what each thread got
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
