"""Small async helpers shared by consumers and the worker."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


async def await_many_dispatch(
    consumer_callables: Sequence[Callable[[], Awaitable[Any]]],
    dispatch: Callable[[Any], Awaitable[Any]],
) -> None:
    """Await every source at once and dispatch results in the order they complete.

    With a single source this is a plain loop with no extra tasks. With several,
    each source has one pending task, re-armed *before* its result is dispatched so
    the next message can arrive while a handler runs; completion callbacks feed one
    wake-up future instead of a ``asyncio.wait`` set-up per message.
    """
    if len(consumer_callables) == 1:
        source = consumer_callables[0]
        while True:
            await dispatch(await source())

    loop = asyncio.get_running_loop()
    ready: deque[asyncio.Future[Any]] = deque()
    wakeup: asyncio.Future[None] | None = None

    def on_done(task: asyncio.Future[Any]) -> None:
        ready.append(task)
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def start(index: int) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(consumer_callables[index]())
        task.add_done_callback(on_done)
        return task

    tasks = [start(index) for index in range(len(consumer_callables))]
    try:
        while True:
            while not ready:
                wakeup = loop.create_future()
                await wakeup
                wakeup = None
            task = ready.popleft()
            index = tasks.index(task)
            result = task.result()
            tasks[index] = start(index)
            await dispatch(result)
    finally:
        for task in tasks:
            task.remove_done_callback(on_done)
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                pass
