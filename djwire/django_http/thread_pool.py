"""A minimal thread pool for blocking calls made from the event loop.

``loop.run_in_executor`` costs a ``concurrent.futures.Future`` (with its
``threading.Condition`` and lock) plus an asyncio wrapper future per call. Here a call
is one tuple on a ``SimpleQueue`` and its result comes back with one
``call_soon_threadsafe``. Threads start on demand, up to ``size``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class ThreadPool:
    """Run sync callables in up to ``size`` daemon threads; await their results."""

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("a thread pool needs at least one thread")
        self.size = size
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Call ``function(*args)`` in a pool thread; a future for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._idle == 0 and len(self._threads) < self.size:
                self._start_thread()
            else:
                self._idle -= 1  # this job will take an idle thread
        self._jobs.put((loop, future, function, args))
        return future

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            loop, future, function, args = job
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the awaiting task
                error: BaseException | None = exc
                result = None
            else:
                error = None
            del job, function, args
            with self._lock:
                self._idle += 1
            # RuntimeError: the loop is closed, so nobody waits for this any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future, result, error)
            del future, result, error

    def shutdown(self) -> None:
        """Let the threads finish their current jobs and exit."""
        for _ in self._threads:
            self._jobs.put(None)
