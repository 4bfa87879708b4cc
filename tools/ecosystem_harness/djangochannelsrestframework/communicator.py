"""``connected_communicator``, which the suite imports from tests.communicator."""

# The timeout= arguments are the communicators' public API.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from channels.testing import WebsocketCommunicator


class Communicator(WebsocketCommunicator):
    """A communicator that can be read again after a receive timed out."""

    connected = False

    async def receive_output(self, timeout: float = 1) -> Any:
        # Unlike asgiref's, a timeout leaves the application running, so a test can
        # read until nothing comes and go on talking to the same consumer.
        if self.future.done():
            self.future.result()
        try:
            return await asyncio.wait_for(self.output_queue.get(), timeout)
        except TimeoutError:
            if self.future.done():
                self.future.result()
            raise

    async def connect(self, timeout: float = 1) -> Any:
        self.connected, detail = await super().connect(timeout)
        return self.connected, detail

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        await super().disconnect(code, timeout)
        self.connected = False

    async def receive_many_json_from(self, timeout: float = 1) -> list[Any]:
        received = []
        with contextlib.suppress(TimeoutError):
            while True:
                received.append(await self.receive_json_from(timeout=timeout))
        return received


@contextlib.asynccontextmanager
async def connected_communicator(
    application: Any, path: str = "/testws/"
) -> AsyncIterator[Communicator]:
    communicator = Communicator(application, path)
    connected, _ = await communicator.connect()
    try:
        assert connected, "the consumer did not accept the connection"
        yield communicator
    finally:
        if communicator.connected:
            await communicator.disconnect()
