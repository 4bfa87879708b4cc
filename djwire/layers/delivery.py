"""Handing messages to this process's channels: the delivery every backend shares.

A backend decides *which* process-local channels a message is for (the in-memory
layer from its own groups, the Redis layer from what its inbox feed brings in);
these functions put it there: straight to an attached socket when the message is a
``websocket.send`` (see :mod:`djwire.layers.direct`), else into the channel's
bounded queue, counting and logging what a full queue refuses.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any

from djwire.exceptions import ChannelFull

from .base import LayerStats, Message, count_loss
from .direct import DirectSocket, FrameEncoder, Payload, socket_payload
from .local import Backlog, LocalChannels, running_loop
from .pacing import new_backlog, relieve

logger = logging.getLogger("djwire.layers")


async def send_local(
    queues: LocalChannels, stats: LayerStats, channel: str, message: Message
) -> None:
    """Deliver a message sent to one local channel; raise ChannelFull at capacity.

    Paced: a receiver that keeps up but was left behind is waited for (bounded),
    see :mod:`djwire.layers.pacing`.
    """
    backlog = new_backlog(queues)
    _deliver_one(queues, stats, channel, message, backlog)
    if backlog:
        await relieve(queues, backlog)


def _deliver_one(
    queues: LocalChannels,
    stats: LayerStats,
    channel: str,
    message: Message,
    backlog: Backlog | None,
) -> None:
    payload = socket_payload(message)
    if payload is not None:
        socket = queues.socket_for(channel, running_loop())
        if socket is not None and _write_direct([(channel, socket)], payload, backlog):
            stats.direct_deliveries += 1
            return
    # Copy so the sender may reuse its dict; the receiver gets a private one.
    if not queues.offer(channel, fast_copy(message), backlog):
        raise ChannelFull(channel, queues.get_capacity(channel))


def offer_local(queues: LocalChannels, stats: LayerStats, channel: str, message: Message) -> None:
    """Queue a message that arrived from another process for ``channel``; when the
    queue is full it is dropped, counted and logged (the sender cannot be told)."""
    if not queues.offer(channel, message):
        count_dropped(stats, "a message", channel, "its queue is full")


def deliver_to_local(
    queues: LocalChannels,
    stats: LayerStats,
    members: Iterable[str],
    message: Message,
    backlog: Backlog | None = None,
) -> None:
    """Fan a group message out to the process-local ``members``.

    Sockets attached to idle channels get one shared frame; every other member gets
    its own shallow copy of one deep copy (a consumer that rebinds keys cannot
    affect another). A full member's copy is dropped, counted and logged. A paced
    sender passes a ``backlog`` and then waits for it (see :mod:`djwire.layers.pacing`).
    """
    payload = socket_payload(message)
    if payload is not None:
        loop = running_loop()
        queued: list[str] = []
        targets = []
        for channel in members:
            socket = queues.socket_for(channel, loop)
            if socket is None:
                queued.append(channel)
            else:
                targets.append((channel, socket))
        if targets:
            stats.direct_deliveries += _write_direct(targets, payload, backlog, queued)
        members = queued
        if not members:
            return
    shared = fast_copy(message)
    for channel in members:
        if not queues.offer(channel, dict(shared), backlog):
            count_dropped(stats, "a group message", channel, "its queue is full")


def _write_direct(
    targets: list[tuple[str, DirectSocket]],
    payload: Payload,
    backlog: Backlog | None,
    refused: list[str] | None = None,
) -> int:
    """Write ``payload`` to the attached sockets, encoding it once per distinct encoder.

    Channels whose socket refuses the frame go to ``refused``, to be queued the
    ordinary way. A socket whose write buffer passed its high-water mark goes to
    ``backlog``, to wait for its drain. Returns how many sockets took the frame.
    """
    text, data = payload
    frames: dict[FrameEncoder, bytes] = {}
    written = 0
    for channel, socket in targets:
        encoder = socket.frame_encoder
        frame = frames.get(encoder)
        if frame is None:
            frame = frames[encoder] = encoder(text, data)
        if not socket.write_frame(frame):
            if refused is not None:
                refused.append(channel)
            continue
        written += 1
        if socket.write_paused and backlog is not None:
            backlog.append((channel, None, socket.drain_future()))
    return written


def count_dropped(stats: LayerStats, what: str, target: str, reason: str) -> None:
    """Count a message refused for lack of room in ``stats.dropped_full``, and log it."""
    count_loss(
        stats,
        "dropped_full",
        logger,
        "Dropped %s for %s (%s); %d dropped so far in this process",
        what,
        target,
        reason,
    )


def fast_copy(value: Any) -> Any:
    """A deep copy of JSON/msgpack-like data, ~10x faster than ``copy.deepcopy``.

    Containers are rebuilt; immutable leaves are shared; anything else falls back
    to ``copy.deepcopy`` so odd values still get copy semantics.
    """
    kind = type(value)
    if kind is dict:
        return {key: fast_copy(item) for key, item in value.items()}
    if kind is list:
        return [fast_copy(item) for item in value]
    if kind in _IMMUTABLE:
        return value
    if kind is tuple:
        return tuple(fast_copy(item) for item in value)
    return copy.deepcopy(value)


_IMMUTABLE = frozenset({str, bytes, int, float, bool, type(None)})
