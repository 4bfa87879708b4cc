"""A process using the IPC layer, driven by a test over stdin/stdout (JSON lines).

    python -m tests.layers.ipc.peer <space path, or - for the default> [layer option JSON]

Each request is ``{"id": n, "op": ..., ...}`` and runs as its own task, so a
pending receive does not hold up other requests; each reply is ``{"id": n,
"result": ...}`` or ``{"id": n, "error": "ExceptionName: text"}``. Messages are
JSON here, so tests compare them as JSON.

Some operations end the process on purpose, at a chosen point (fault injection
with a real SIGKILL): ``die_mid_frame`` writes half a frame to another process's
inbox, ``die_holding_lock`` inside a store write transaction.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import zlib
from typing import Any

from djwire.layers.ipc import IPCChannelLayer
from djwire.layers.ipc import frames as ipc_frames

RECEIVE_TIMEOUT = 10.0


def checked(sender: str, n: int, size: int) -> dict[str, Any]:
    """A message whose body can be checked: its CRC travels with it."""
    unit = f"{sender}:{n}:"
    body = (unit * (size // len(unit) + 1))[:size]
    return {
        "type": "checked",
        "from": sender,
        "n": n,
        "body": body,
        "crc": zlib.crc32(body.encode()),
    }


def intact(message: dict[str, Any]) -> bool:
    return zlib.crc32(message["body"].encode()) == message["crc"]


class Peer:
    def __init__(self, layer: IPCChannelLayer) -> None:
        self.layer = layer
        self.out = sys.stdout

    def reply(self, **fields: Any) -> None:
        self.out.write(json.dumps(fields) + "\n")
        self.out.flush()

    async def handle(self, request: dict[str, Any]) -> None:
        try:
            result = await getattr(self, "op_" + request.pop("op"))(
                **{key: value for key, value in request.items() if key != "id"}
            )
        except Exception as exc:
            self.reply(id=request["id"], error=f"{type(exc).__name__}: {exc}")
        else:
            self.reply(id=request["id"], result=result)

    # -- the layer's API ----------------------------------------------------------------

    async def op_new_channel(self, prefix: str = "specific.") -> str:
        return await self.layer.new_channel(prefix)

    async def op_send(self, channel: str, message: dict[str, Any]) -> None:
        await self.layer.send(channel, message)

    async def op_receive(self, channel: str, timeout: float = RECEIVE_TIMEOUT) -> Any:  # noqa: ASYNC109
        return await asyncio.wait_for(self.layer.receive(channel), timeout)

    async def op_receive_many(
        self,
        channel: str,
        count: int,
        timeout: float = RECEIVE_TIMEOUT,  # noqa: ASYNC109 - a field of the request
    ) -> list[Any]:
        got: list[Any] = []
        try:
            async with asyncio.timeout(timeout):
                while len(got) < count:
                    got.append(await self.layer.receive(channel))
        except TimeoutError:
            pass
        return got

    async def op_take(
        self,
        channel: str,
        count: int = 1,
        lease: float | None = None,
        timeout: float = RECEIVE_TIMEOUT,  # noqa: ASYNC109 - a field of the request
    ) -> list[Any]:
        deliveries = await asyncio.wait_for(self.layer.take(channel, count, lease=lease), timeout)
        return [[d.message, d.tag, d.attempt] for d in deliveries]

    async def op_group_add(self, group: str, channel: str) -> None:
        await self.layer.group_add(group, channel)

    async def op_group_discard(self, group: str, channel: str) -> None:
        await self.layer.group_discard(group, channel)

    async def op_group_send(self, group: str, message: dict[str, Any]) -> None:
        await self.layer.group_send(group, message)

    async def op_group_channels(self, group: str) -> list[str]:
        return await self.layer.group_channels(group)

    async def op_stats(self) -> dict[str, Any]:
        stats = self.layer.stats
        return {
            "dropped_full": stats.dropped_full,
            "expired": stats.expired,
            **stats.extra,
        }

    async def op_token(self) -> str:
        return self.layer.token

    async def op_space(self) -> str:
        return str(self.layer.space)

    # -- load -------------------------------------------------------------------------------

    async def op_send_checked(
        self, channel: str, count: int, size: int = 100, name: str = "", full_ok: bool = False
    ) -> int:
        """Send ``count`` checkable messages in order; returns how many were sent."""
        sent = 0
        for n in range(count):
            try:
                await self.layer.send(channel, checked(name, n, size))
            except Exception:
                if not full_ok:
                    raise
                await asyncio.sleep(0.001)
                continue
            sent += 1
        return sent

    async def op_send_forever(self, channel: str, size: int, name: str) -> None:
        """Send checkable messages until killed (sizes vary up to ``size``)."""
        n = 0
        while True:
            try:
                await self.layer.send(channel, checked(name, n, 1 + (n * 7919) % size))
            except Exception:
                await asyncio.sleep(0.001)
                continue
            n += 1
            if n % 16 == 0:
                await asyncio.sleep(0)

    # -- dying on purpose ---------------------------------------------------------------------

    async def op_die_mid_frame(self, channel: str) -> None:
        """Write the first half of a message frame to ``channel``'s process, then die."""
        token = channel[: channel.index("!")].rpartition(".")[2]
        packed = ipc_frames.pack_message(checked("dying", 0, 10_000), 1 << 20)
        frame = ipc_frames.message_frame(channel, 2**41, packed)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.layer.space / "p" / token))
        sock.sendall(frame[: len(frame) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

    async def op_die_holding_lock(self) -> None:
        """Begin a store write (a named-channel message half stored), then die."""
        store = self.layer.store
        connection = store._connect()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO messages(channel, due, deadline, attempt, payload) "
            "VALUES ('half-done', 0, ?, 1, ?)",
            (2**41, b"\x80"),
        )
        self.reply(id=0, result="locked")
        os.kill(os.getpid(), signal.SIGKILL)

    async def op_exit(self) -> None:
        """End the process normally without closing the layer (atexit runs)."""
        sys.exit(0)

    async def op_vanish(self) -> None:
        """End the process at once: no atexit, no finalizers (like a crash)."""
        sys.stdout.flush()
        os._exit(0)


async def main(path: str, options: dict[str, Any]) -> None:
    if path != "-":  # "-": the default space of DJANGO_SETTINGS_MODULE
        options["path"] = path
    layer = IPCChannelLayer(**options)
    peer = Peer(layer)
    peer.reply(id=0, result="ready", token=layer.token, pid=os.getpid())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks = set()
    while line := await reader.readline():
        task = asyncio.ensure_future(peer.handle(json.loads(line)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    # stdin closed: the test is done with us (exit without closing the layer).


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}))
