"""Commands to the right Redis node, and what to do when Redis says "not now".

Every layer operation is one command, mostly a script, on the node that holds its
key's tag (see :mod:`.cluster`), sent over that node's pipe for the running event
loop (see :mod:`.loops`). Some replies ask for another try:

* ``MOVED``/``ASK``: the cluster moved the slot; load the slot map again;
* ``NOSCRIPT``: someone ran ``SCRIPT FLUSH``; load the scripts again;
* ``READONLY``/``MASTERDOWN``/``LOADING``/``TRYAGAIN``: a failover or restart is
  under way; reconnect (a Sentinel is asked again) after a backoff.

Commands that are safe to run twice can also be sent again after a connection broke
under them, until ``retry_timeout`` has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError

from djwire.exceptions import LayerUnavailable

from . import scripts
from .accounting import OutageMonitor
from .cluster import Router
from .config import Limits
from .loops import PerLoop
from .nodes import Node
from .pipe import LOADED_SCRIPTS, CommandPipe, OnConnect
from .subscriber import Subscriber

#: Tries per command: recoveries from MOVED, NOSCRIPT, READONLY and the like.
MAX_ATTEMPTS = 4

Enqueue = Callable[[CommandPipe], asyncio.Future[Any]]


class Commands:
    """Sends commands to the node of a tag, over this event loop's connections."""

    def __init__(
        self,
        router: Router,
        limits: Limits,
        monitor: OutageMonitor,
        client_name: str | None,
        on_connect: OnConnect,
    ) -> None:
        self.router = router
        self.limits = limits
        self.monitor = monitor
        self.client_name = client_name
        self.on_connect = on_connect
        self.loops = PerLoop(self._make_pipe, self._make_subscriber)

    def _make_pipe(self, node: Node) -> CommandPipe:
        return CommandPipe(node, self.limits, self.monitor, self.client_name, self.on_connect)

    def _make_subscriber(self, node: Node) -> Subscriber:
        return Subscriber(
            node,
            self.limits,
            self.monitor,
            sharded=self.router.cluster,
            client_name=self.client_name,
        )

    async def node(self, tag: str) -> Node:
        """The node holding ``tag`` (the cluster's slot map is loaded on first use)."""
        if not self.router.ready:
            await self.router.load(self.limits.connect_timeout)
        return self.router.node_for(tag)

    def node_key(self, tag: str) -> str:
        """The name of ``tag``'s node if it is known without asking, else the tag."""
        return self.router.node_for(tag).key if self.router.ready else tag

    def pipe(self, node: Node) -> CommandPipe:
        return self.loops.current().pipe(node)

    def subscriber(self, node: Node) -> Subscriber:
        return self.loops.current().subscriber(node)

    def send_now(self, tag: str, command: scripts.Command) -> asyncio.Future[Any] | None:
        """Send ``command`` at once, so its round trip overlaps the caller's work; None
        if the node is not known yet. Its reply is not recovered: check it."""
        if not self.router.ready:
            return None
        pipe = self.pipe(self.router.node_for(tag))
        reply = pipe.call(command)
        pipe.flush_now()
        return reply

    async def run(self, tag: str, enqueue: Enqueue) -> Any:
        """Issue a command through ``enqueue`` on ``tag``'s node and return its reply,
        recovering from the replies above."""
        for attempt in range(MAX_ATTEMPTS):
            pipe = self.pipe(await self.node(tag))
            reply = await enqueue(pipe)
            if not isinstance(reply, ResponseError):
                return reply
            text = str(reply)
            if text.startswith(("MOVED", "ASK")):
                await self.router.refresh(self.limits.connect_timeout)
            elif text.startswith("NOSCRIPT"):
                for script in LOADED_SCRIPTS:
                    pipe.call(script.load()).add_done_callback(ignore_result)
            elif text.startswith(("READONLY", "MASTERDOWN", "LOADING", "TRYAGAIN")):
                pipe.reset()
                await asyncio.sleep(self.limits.reconnect_backoff[0] * 2**attempt)
            else:
                raise reply
        raise LayerUnavailable(f"Redis at {pipe.node} kept refusing a command: {reply}")

    async def script(
        self, tag: str, script: scripts.Script, keys: tuple[bytes, ...], args: tuple[Any, ...]
    ) -> Any:
        command = script.evalsha(keys, args)
        return await self.run(tag, lambda pipe: pipe.call(command))

    async def script_riding(
        self,
        tag: str,
        script: scripts.Script,
        keys: tuple[bytes, ...],
        args: tuple[Any, ...],
        delay: float,
    ) -> Any:
        """:meth:`script`, sent with the node's next write or after ``delay`` (see
        :meth:`.pipe.CommandPipe.ride`)."""
        command = script.evalsha(keys, args)
        return await self.run(tag, lambda pipe: pipe.ride(command, delay))

    def expedite(self, tag: str) -> None:
        """Send the commands riding to ``tag``'s node now."""
        if self.router.ready:
            self.pipe(self.router.node_for(tag)).expedite()

    async def repeatable(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call`` (commands safe to run twice); after a connection broke under it,
        run it again until ``retry_timeout`` has passed, then let the LayerUnavailable
        (which names the node) through."""
        started = time.monotonic()
        while True:
            try:
                return await call()
            except LayerUnavailable:
                if time.monotonic() - started >= self.limits.retry_timeout:
                    raise
                await asyncio.sleep(self.limits.reconnect_backoff[0])

    async def aclose_current(self) -> None:
        """Close this loop's connections (see :meth:`.loops.PerLoop.aclose_current`)."""
        await self.loops.aclose_current()


def ignore_result(future: asyncio.Future[Any]) -> None:
    """A done-callback for commands whose reply nobody reads (retrieves errors)."""
    if not future.cancelled():
        future.exception()
