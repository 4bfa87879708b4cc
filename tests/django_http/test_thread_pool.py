"""The view thread pool: results and errors come back to the loop; threads start on demand."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from djwire.django_http.thread_pool import ThreadPool


async def test_results_errors_and_thread_reuse() -> None:
    pool = ThreadPool(2, "test-pool")
    assert await pool.run(lambda x: x * 2, 21) == 42
    with pytest.raises(ZeroDivisionError):
        await pool.run(lambda: 1 / 0)
    names = {await pool.run(lambda: threading.current_thread().name) for _ in range(10)}
    assert names <= {"test-pool-0", "test-pool-1"}
    assert len(pool._threads) == 1  # sequential calls reuse one thread
    pool.shutdown()


async def test_at_most_size_threads_and_all_calls_complete() -> None:
    pool = ThreadPool(3, "test-pool")
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1

    calls = [pool.run(job) for _ in range(9)]
    await asyncio.sleep(0.1)
    release.set()
    assert await asyncio.gather(*calls) == [None] * 9
    assert peak == 3 and len(pool._threads) == 3
    pool.shutdown()


async def test_a_cancelled_waiter_does_not_break_the_pool() -> None:
    pool = ThreadPool(1, "test-pool")
    waiter = pool.run(time.sleep, 0.1)
    waiter.cancel()
    assert await pool.run(lambda: "still works") == "still works"
    pool.shutdown()
