"""A small ASGI app for the command-line tests: says which process answered."""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

# Python 3.12 starts with objects in the permanent generation already (3.11 and
# 3.13 start with none): "frozen" means the server froze more after importing us.
_FROZEN_AT_IMPORT = gc.get_freeze_count()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "http":
        if scope["path"] == "/slow":
            await asyncio.sleep(1.0)  # an in-flight request during shutdown
        body = (
            f"pid={os.getpid()} root={scope['root_path']} path={scope['path']} "
            f"gc={gc.get_threshold()} frozen={gc.get_freeze_count() > _FROZEN_AT_IMPORT}"
        ).encode()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": body})
        return
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message.get("text")})


async def lifespan_fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app whose lifespan startup fails (say, its database is unreachable)."""
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})
