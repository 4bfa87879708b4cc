"""Threads for sync consumers in workers.

Sync consumers (``SyncConsumer``, classic function consumers) run their handlers
through asgiref's thread-sensitive ``sync_to_async``, which by default puts every
call of the process on ONE thread: a worker with ``--concurrency 32`` would still
run one sync handler at a time. Each application instance of a worker therefore
runs inside its own thread-sensitive context, bound to one of a fixed set of
single-thread executors: ``concurrency`` threads at most, and the handlers of one
instance always on the same thread (what thread-sensitive code expects).
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext

# asgiref >= 3.9 lets a context use an executor it does not own; older versions
# make a thread per context (still correct, only more threads).
_TAKES_EXECUTOR = "executor" in inspect.signature(ThreadSensitiveContext.__init__).parameters


class ThreadPool:
    """``size`` single-thread executors, handed out round-robin."""

    def __init__(self, size: int, name: str) -> None:
        self.executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-{n}")
            for n in range(size)
        ]
        self._next = itertools.cycle(self.executors)

    @contextlib.asynccontextmanager
    async def context(self) -> AsyncIterator[None]:
        """Run the body's thread-sensitive calls on one of the pool's threads."""
        if _TAKES_EXECUTOR:
            context = ThreadSensitiveContext(executor=next(self._next))
        else:  # pragma: no cover - old asgiref
            context = ThreadSensitiveContext()
        async with context:
            yield

    def shutdown(self) -> None:
        for executor in self.executors:
            executor.shutdown(wait=False, cancel_futures=True)
