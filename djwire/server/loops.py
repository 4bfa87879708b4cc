"""Event loop choice: uvloop when installed (libuv; faster I/O), else asyncio's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")


def loop_factory(
    kind: Literal["auto", "uvloop", "asyncio"],
) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], kind: Literal["auto", "uvloop", "asyncio"] = "auto") -> T:
    try:
        factory = loop_factory(kind)
    except ImportError:
        main.close()  # never to run: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
