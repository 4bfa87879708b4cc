"""Write backpressure shared by HTTP and WebSocket sessions.

The transport calls ``pause_writing()`` when its buffer passes the high-water mark
and ``resume_writing()`` below the low-water mark. A sender then waits in
``wait_for_drain()``; if the client does not catch up within ``send_timeout`` the
registry's clock closes the connection (see ``write_deadline``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from djwire.server.state import ServerState

INF: Final = float("inf")


class WriteFlow(asyncio.Protocol):
    """asyncio protocol half that tracks the transport's write buffer."""

    __slots__ = ("drain_waiter", "write_deadline", "write_paused")

    state: ServerState  # provided by the subclass

    def init_flow(self) -> None:
        self.write_paused = False
        self.write_deadline = INF
        self.drain_waiter: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        # The client caught up: whoever started the slow-reader clock (a send()
        # or a direct frame write), it stops now.
        self.write_deadline = INF
        self.release_drain()

    def release_drain(self) -> None:
        """Wake a sender waiting for the buffer to drain (caught up or gone)."""
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for_drain(self) -> None:
        waiter = self.drain_waiter
        if waiter is None:
            waiter = self.drain_waiter = self.state.loop.create_future()
            self.write_deadline = self.state.now + self.state.config.send_timeout
        # Shielded: a cancelled sender must not cancel the waiter others share.
        await asyncio.shield(waiter)
