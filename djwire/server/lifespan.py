"""The ASGI lifespan protocol (spec 2.0): startup before serving, shutdown after.

Where the protocol is lives in :data:`~djwire.server.protocols.states.LIFESPAN`, the
table every transition goes through: the server's own events (``startup``,
``shutdown``) and the application's answers, which arrive in the order the spec gives
or raise :class:`~djwire.exceptions.UnexpectedMessage` in the application.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from djwire.server.asgi_types import LIFESPAN_ASGI, ASGIApp, LifespanEvent, LifespanScope, Message
from djwire.server.protocols.states import LIFESPAN, LifespanState

logger = logging.getLogger("djwire.server")


class Lifespan:
    """Runs the app's lifespan task and reports whether startup worked."""

    def __init__(self, app: ASGIApp, mode: Literal["auto", "on", "off"]) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.phase = LifespanState.IDLE
        self._inbox: asyncio.Queue[LifespanEvent] = asyncio.Queue()
        #: The app's answer to the event last sent.
        self._answer: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    @property
    def supported(self) -> bool:
        """The app speaks lifespan: it completed startup."""
        return self.phase in (LifespanState.STARTED, LifespanState.STOPPING, LifespanState.STOPPED)

    async def startup(self) -> bool:
        """True when the server may start serving."""
        if self.mode == "off":
            return True
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._task = loop.create_task(self._run())
        self.phase = LIFESPAN.after(self.phase, "startup")
        await self._inbox.put({"type": "lifespan.startup"})
        waits: list[asyncio.Future[Any]] = [self._answer, self._task]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not self._answer.done():
            # The app returned or raised without answering: it has no lifespan.
            if self.mode == "on":
                logger.error("ASGI lifespan startup failed: %r", self._error)
                return False
            logger.info("ASGI lifespan not supported by the app (%r); continuing", self._error)
            return True
        if self.phase is LifespanState.STARTED:
            return True
        logger.error("ASGI lifespan startup failed: %s", self._answer.result().get("message", ""))
        return False

    async def shutdown(self, limit: float) -> None:
        if self.phase is not LifespanState.STARTED or self._task is None or self._task.done():
            return
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self.phase = LIFESPAN.after(self.phase, "shutdown")
        await self._inbox.put({"type": "lifespan.shutdown"})
        waits: list[asyncio.Future[Any]] = [self._answer, self._task]
        done, _ = await asyncio.wait(waits, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        if self._answer.done():
            answer = self._answer.result()
            if answer["type"] == "lifespan.shutdown.failed":
                logger.error("ASGI lifespan shutdown failed: %s", answer.get("message", ""))
        elif not done:
            logger.warning("ASGI lifespan shutdown did not finish within %ss", limit)
        if not self._task.done():
            self._task.cancel()

    async def _run(self) -> None:
        scope: LifespanScope = {"type": "lifespan", "asgi": LIFESPAN_ASGI, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            self._error = exc
            if self.supported or self.mode == "on":
                logger.exception("Exception in ASGI lifespan")
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def _receive(self) -> LifespanEvent:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        # Raises UnexpectedMessage in the app for an answer out of order.
        self.phase = LIFESPAN.next(self.phase, message["type"])
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result(message)
