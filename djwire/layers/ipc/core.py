"""IPCChannelLayer: channels and groups shared by the processes of one machine.

No server to run: processes that open the same *shared space* (a directory, see
:mod:`.space`) find each other through it.

* **Process-specific channels** (``specific.TOKEN!xyz``, from ``new_channel()``)
  live in the process whose token they carry, in process-local queues, as in the
  Redis layer. Another process sends by writing a frame to that process's inbox
  socket (``<space>/p/TOKEN``); a message to one of the process's own channels
  never leaves it. Nothing shared holds these messages, so a process that dies
  takes them with it and leaves nothing to clean up but its socket file.
* **Groups** live in the shared store (SQLite): members, and a version bumped by
  every membership change. ``group_send`` delivers to this process's members
  directly, serializes the message once, and writes one frame per other process
  that has members; each receiving process fans it out to its own members — a
  ``websocket.send`` straight to the sockets. The members are read from the store
  only when the version changed since the process last looked: a group send costs
  one indexed read plus one frame per process, not a row per member.
* **Named channels** (no ``!``: workers, background tasks) are queues in the store
  that any process may take from, each message going to one taker, with the
  ``"queues"`` extension (leases, retries, dead letters, delayed sends; see
  :mod:`.queues`). Waiters are woken by their senders (see :mod:`.watches`).

Processes that end without closing are noticed by the others the first time they
write to them (the socket refuses connections); their memberships and listening
registrations are then removed, and the socket file deleted. A new process does
the same for every process it finds gone when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from djwire.exceptions import ChannelFull, InvalidChannelLayerError

from ..base import BaseChannelLayer, Message, check_message, count_loss
from ..delivery import count_dropped, deliver_to_local, offer_local, send_local
from ..direct import DirectSocket
from ..local import LocalChannels
from ..pacing import new_backlog, relieve
from ..queue_types import DeadLetter, Delivery, check_delay, require_named
from . import frames, space
from .config import Limits
from .frames import Kind
from .inbox import STARTING_PREFIX, Inbox
from .links import Link, Sent, probe
from .queues import NamedQueues
from .store import GroupView, Pushed, Store, StoreFull, now_ms

logger = logging.getLogger("djwire.layers.ipc")
T = TypeVar("T")

_BAD_FRAMES = {
    "truncated": "a process ended in the middle of writing a message",
    "oversized": "a frame exceeded max_message_size (configure every process alike)",
    "misdirected": "a message for a channel of another process arrived here",
    "malformed": "the data is not an IPC layer frame",
}
#: How many recently gone processes a layer remembers, so sends to them fail fast.
_GONE_MEMORY = 1024
#: Longest close() or the end of the process waits for other processes to read what
#: this one sent them (a process that does not read would hold up the exit).
EXIT_LINGER = 1.0


def owner_token(channel: str) -> str | None:
    """The process token of ``prefix.TOKEN!local``; None for a named channel."""
    bang = channel.find("!")
    if bang < 0:
        return None
    return channel[:bang].rpartition(".")[2]


class IPCChannelLayer(BaseChannelLayer):
    """A channel layer shared by processes on one machine; see the module docstring."""

    extensions: ClassVar[list[str]] = ["groups", "flush", "queues"]
    #: The processes of one shared space reach each other's channels and groups
    #: (read by ``djwire serve --workers`` and ``manage.py check``, which warn otherwise).
    shared_between_processes: ClassVar[bool] = True

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | re.Pattern[str], int] | None = None,
        *,
        name: str | None = None,
        path: str | os.PathLike[str] | None = None,
        max_message_size: int = Limits.max_message_size,
        peer_buffer_size: int = Limits.peer_buffer_size,
        max_store_size: int | None = None,
        lock_timeout: float = Limits.lock_timeout,
        poll_interval: float = Limits.poll_interval,
        max_batch: int = Limits.max_batch,
        max_dead_letters: int = Limits.max_dead_letters,
        group_cache_size: int = Limits.group_cache_size,
        backpressure_timeout: float = Limits.backpressure_timeout,
        prefix: str | None = None,  # asgi_ipc (Channels 1): the name of the space
        channel_memory: int | None = None,  # asgi_ipc: with group_memory, the store size
        group_memory: int | None = None,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        if group_expiry <= 0:
            raise InvalidChannelLayerError("group_expiry must be positive")
        if prefix is not None:
            if name is not None:
                raise InvalidChannelLayerError(
                    "IPCChannelLayer takes 'name' or 'prefix', not both"
                )
            name = prefix
        if max_store_size is None:
            legacy = (channel_memory or 0) + (group_memory or 0)
            max_store_size = legacy or Limits.max_store_size
        self.limits = Limits(
            max_message_size=max_message_size,
            peer_buffer_size=peer_buffer_size,
            max_store_size=max_store_size,
            lock_timeout=lock_timeout,
            poll_interval=poll_interval,
            max_batch=max_batch,
            max_dead_letters=max_dead_letters,
            group_cache_size=group_cache_size,
            backpressure_timeout=backpressure_timeout,
        )
        self.group_expiry = group_expiry
        self.space = space.resolve(name, path)
        #: ``expiry`` in milliseconds, as the store and the frames count time.
        self.expiry_ms = int(expiry * 1000)
        self._group_expiry_ms = int(group_expiry * 1000)
        self._prepared = False
        self._begin()
        _instances.add(self)

    def _begin(self) -> None:
        """This process's identity and state (again in a forked child)."""
        #: This layer instance's process token: names its channels and its inbox.
        self.token = secrets.token_hex(6)
        # Every channel of this process, and no other, contains this (names have at
        # most one "!", and new_channel() puts a "." before the token).
        self._own_marker = f".{self.token}!"
        self.pid = os.getpid()
        self.local = LocalChannels(
            self.expiry,
            self.get_capacity,
            self.stats,
            backpressure_timeout=self.limits.backpressure_timeout,
        )
        self.store = Store(
            self.space / space.STORE_FILE, self.limits.max_store_size, self.limits.lock_timeout
        )
        self._inbox: Inbox | None = None
        self._links: dict[str, Link] = {}
        self._gone: dict[str, None] = {}
        #: Named channels as work queues (leases, dead letters, delays): see .queues.
        self.named_queues = NamedQueues(self)
        self._views: dict[str, GroupView] = {}
        # What this process must release when the layer goes or the process ends:
        # also a process that only sends has links whose frames must go out first.
        self._owned = _Owned(self.store, self._links, self.token, self.pid)
        self._finalizer = weakref.finalize(self, _teardown, self._owned)

    def __repr__(self) -> str:
        return f"<IPCChannelLayer {str(self.space)!r} token={self.token}>"

    # -- the shared space -------------------------------------------------------------

    def _prepare(self) -> None:
        if not self._prepared:
            space.prepare(self.space)
            self._prepared = True

    def _socket_path(self, token: str) -> Path:
        return self.space / space.SOCKETS_DIR / token

    def _ensure_inbox(self) -> None:
        """Listen for other processes (once), and read on this loop unless a live
        loop already does."""
        inbox = self._inbox
        if inbox is None:
            self._prepare()
            # Weakly: the finalizer holds the inbox, and must not keep the layer alive.
            inbox = self._inbox = Inbox(
                self._socket_path(self.token),
                self.limits.max_message_size,
                _weakly(self._on_frame),
                _weakly(self._on_bad_frame),
            )
            self._owned.inbox = inbox
            self._reclaim_gone()
        if not inbox.attached_to_live_loop():
            inbox.attach(asyncio.get_running_loop())

    def _reclaim_gone(self) -> None:
        """Forget every process of the space that has ended (this one just started)."""
        sockets = self.space / space.SOCKETS_DIR
        try:
            entries = list(os.scandir(sockets))
        except OSError:
            entries = []
        tokens = {entry.name for entry in entries if not entry.name.startswith(STARTING_PREFIX)}
        for entry in entries:  # left by a process that died while starting
            if entry.name.startswith(STARTING_PREFIX):
                with contextlib.suppress(OSError):
                    if time.time() - entry.stat(follow_symlinks=False).st_mtime > 60:
                        os.unlink(entry.path)
        tokens |= self.store.read(self.store.tokens)
        tokens.discard(self.token)
        for token in tokens:
            if not probe(self._socket_path(token)):
                self._forget_process(token)

    def _forget_process(self, token: str) -> None:
        """``token``'s process has ended: remove its memberships, listening, socket."""
        self._gone[token] = None
        if len(self._gone) > _GONE_MEMORY:
            del self._gone[next(iter(self._gone))]
        link = self._links.pop(token, None)
        if link is not None:
            link.close()
        try:
            removed = self.store.write_now(lambda c: self.store.reclaim(c, token))
        except Exception as exc:  # another process will do it
            logger.warning("Could not remove ended process %s from the store: %r", token, exc)
            removed = 0
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            os.unlink(self._socket_path(token))
        logger.info(
            "IPC layer: process %s has ended; removed its %d group memberships", token, removed
        )

    # -- frames from other processes ----------------------------------------------------

    def _on_frame(self, frame: Any) -> None:
        if type(frame) is not list or len(frame) < 4:
            self._on_bad_frame("malformed")
            return
        kind, target, deadline, message = frame[0], frame[1], frame[2], frame[3]
        if kind == Kind.WAKE:
            self.named_queues.poke(target)
            return
        if type(message) is not dict or type(target) is not str or type(deadline) is not int:
            self._on_bad_frame("malformed")
            return
        now = now_ms()
        if deadline <= now:
            self.stats.expired += 1
            return
        if kind == Kind.MESSAGE:
            if self._own_marker not in target:
                self._on_bad_frame("misdirected")
            else:
                offer_local(self.local, self.stats, target, message)
        elif kind == Kind.GROUP and len(frame) == 5 and type(frame[4]) is int:
            view = self._views.get(target)
            if view is None or view.version < frame[4]:
                view = self._load_view(target, now)
            if view is not None:
                members = [channel for channel, _ in view.live(now).own]
                if members:
                    deliver_to_local(self.local, self.stats, members, message)
        else:
            self._on_bad_frame("malformed")

    def _on_bad_frame(self, what: str) -> None:
        count_loss(
            self.stats,
            f"frames_{what}",
            logger,
            "IPC layer: dropped a %s frame (%s); %d so far",
            what,
            _BAD_FRAMES.get(what, _BAD_FRAMES["malformed"]),
        )

    # -- group views -------------------------------------------------------------------

    def _load_view(self, group: str, now: int) -> GroupView | None:
        view = self.store.read(lambda c: self.store.group_view(c, group, self.token, now))
        self._remember_view(group, view)
        return view

    def _remember_view(self, group: str, view: GroupView | None) -> None:
        views = self._views
        if view is None:
            views.pop(group, None)
            return
        views.pop(group, None)  # re-insert at the end: the oldest go first
        views[group] = view
        if len(views) > self.limits.group_cache_size:
            del views[next(iter(views))]

    def _current_view(self, group: str, now: int) -> GroupView | None:
        """The group's members now: one indexed read, and a full load only when
        the membership changed since this process last loaded it."""
        cached = self._views.get(group)
        store = self.store

        def look(connection: Any) -> GroupView | None:
            version = store.group_version(connection, group)
            if version is None:
                return None
            if cached is not None and cached.version == version:
                return cached
            return store.group_view(connection, group, self.token, now)

        view = store.read(look)
        if view is not cached:
            self._remember_view(group, view)
        return view

    # -- sending to other processes ------------------------------------------------------

    def _link(self, token: str) -> Link | None:
        link = self._links.get(token)
        if link is None:
            if token in self._gone:
                return None
            link = self._links.setdefault(
                token,
                Link(
                    token,
                    self._socket_path(token),
                    self.limits.peer_buffer_size,
                    _weakly(self._on_link_lost),
                ),
            )
        return link

    def _write(self, token: str, frame: bytes) -> Sent:
        link = self._link(token)
        if link is None:
            return Sent.GONE
        if not self._prepared:
            self._prepare()
        sent = link.write(frame)
        if sent is Sent.GONE:
            self._forget_process(token)
        return sent

    def _on_link_lost(self, token: str, frames_lost: int) -> None:
        if frames_lost:
            self._count_gone(token, frames_lost)
        if not probe(self._socket_path(token)):
            self._forget_process(token)

    def _count_gone(self, target: str, count: int = 1) -> None:
        for _ in range(count):
            count_loss(
                self.stats,
                "receiver_gone",
                logger,
                "IPC layer: dropped a message for %s: its process has ended; %d so far",
                target,
            )

    def _wake(self, listeners: Mapping[str, list[str]]) -> None:
        for channel, tokens in listeners.items():
            for token in tokens:
                if token == self.token:
                    self.named_queues.poke(channel)
                else:
                    self._write(token, frames.wake_frame(channel))

    async def _push(
        self, channels: list[tuple[str, int]], packed: bytes, delay_ms: int = 0
    ) -> Pushed:
        self._prepare()
        now = now_ms()
        store = self.store
        expiry = self.expiry_ms
        pushed: Pushed = await self._store_write(
            lambda c: store.push_many(c, channels, now + delay_ms, expiry, packed, now),
            channels[0][0] if len(channels) == 1 else "a group's named channels",
        )
        if pushed.expired:
            self.stats.expired += pushed.expired
        self._wake(pushed.listeners)
        return pushed

    # -- channels ----------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        self.require_valid_channel_name(channel)
        check_message(message)
        if self._own_marker in channel:
            await send_local(self.local, self.stats, channel, message)
            return
        token = owner_token(channel)
        packed = frames.pack_message(message, self.limits.max_message_size)
        if token is not None:
            frame = frames.message_frame(channel, now_ms() + self.expiry_ms, packed)
            sent = self._write(token, frame)
            if sent is Sent.FULL:
                raise ChannelFull(channel, self.limits.peer_buffer_size)
            if sent is Sent.GONE:
                self._count_gone(channel)
            return
        capacity = self.get_capacity(channel)
        pushed = await self._push([(channel, capacity)], packed)
        if pushed.full:
            raise ChannelFull(channel, capacity)

    def _store_full(self) -> None:
        count_loss(
            self.stats,
            "store_full",
            logger,
            "IPC layer: the shared store %s reached max_store_size (%d bytes); %d refusals so far",
            self.store.path,
            self.limits.max_store_size,
        )

    async def _store_write(self, work: Callable[[Any], T], target: str) -> T:
        """A store write for an operation on ``target``: a full store is ChannelFull."""
        try:
            return await self.store.write(work)
        except StoreFull:
            self._store_full()
            raise ChannelFull(target) from None

    async def receive(self, channel: str) -> Message:
        self.require_valid_channel_name(channel)
        message = self.local.take(channel)
        if message is not None:
            return message
        if self._own_marker in channel:
            self._ensure_inbox()
            return await self.local.get(channel)
        if "!" not in channel:
            return await self._receive_named(channel)
        raise ValueError(
            f"Channel {channel!r} belongs to another process (or layer instance); "
            "only the layer whose new_channel() made it can receive from it"
        )

    def claim_receive(self, channel: str) -> asyncio.Future[Message]:
        """Like ``receive()`` but a plain future, for consumers of this process's own
        channels (see LocalChannels.claim): an idle consumer then costs no Task."""
        if self._own_marker not in channel:
            return asyncio.ensure_future(self.receive(channel))
        self._ensure_inbox()
        return self.local.claim(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        separator = "" if prefix.endswith(".") else "."
        self._ensure_inbox()
        return f"{prefix}{separator}{self.token}!{secrets.token_hex(6)}"

    async def _receive_named(self, channel: str) -> Message:
        (delivery,) = await self.take(channel, 1)
        return delivery.message

    # -- named channels as work queues (the "queues" extension: see .queues) -----------

    async def take(
        self, channel: str, count: int = 1, *, lease: float | None = None
    ) -> list[Delivery]:
        return await self.named_queues.take(channel, count, lease)

    async def ack(self, channel: str, tags: list[str]) -> None:
        await self.named_queues.ack(channel, tags)

    async def retry(self, channel: str, tag: str, delay: float = 0) -> bool:
        return await self.named_queues.retry(channel, tag, delay)

    async def dead_letter(self, channel: str, tag: str, reason: str) -> bool:
        return await self.named_queues.dead_letter(channel, tag, reason)

    async def dead_letters(self, channel: str, limit: int = 100) -> list[DeadLetter]:
        return await self.named_queues.dead_letters(channel, limit)

    async def replay_dead_letters(self, channel: str, ids: list[str] | None = None) -> int:
        return await self.named_queues.replay_dead_letters(channel, ids)

    async def discard_dead_letters(self, channel: str, ids: list[str] | None = None) -> int:
        return await self.named_queues.discard_dead_letters(channel, ids)

    async def send_later(self, channel: str, message: Message, delay: float) -> None:
        """Queue ``message`` on named ``channel``, to be taken ``delay`` seconds from now."""
        self.require_valid_channel_name(channel)
        require_named(channel)
        check_message(message)
        delay_ms = int(check_delay(delay) * 1000)
        packed = frames.pack_message(message, self.limits.max_message_size)
        capacity = self.get_capacity(channel)
        pushed = await self._push([(channel, capacity)], packed, delay_ms)
        if pushed.full:
            raise ChannelFull(channel, capacity)

    # -- groups ------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self._prepare()
        token = owner_token(channel) or ""
        deadline = now_ms() + self._group_expiry_ms
        store = self.store
        await self._store_write(
            lambda c: store.group_add(c, group, channel, token, deadline), group
        )

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self._prepare()
        store = self.store
        await self._store_write(lambda c: store.group_discard(c, group, channel), group)

    async def group_channels(self, group: str) -> list[str]:
        """The live members of ``group`` in every process of the space (members of
        processes found to have ended are removed on the way)."""
        self.require_valid_group_name(group)
        self._prepare()
        now = now_ms()
        store = self.store
        channels = store.read(lambda c: store.group_channels(c, group, now))
        checked: dict[str, bool] = {"": True, self.token: True}
        alive = []
        for channel in channels:
            token = owner_token(channel) or ""
            live = checked.get(token)
            if live is None:
                live = checked[token] = token not in self._gone and probe(self._socket_path(token))
                if not live:
                    self._forget_process(token)
            if live:
                alive.append(channel)
        return alive

    async def group_send(self, group: str, message: Message) -> None:
        self.require_valid_group_name(group)
        check_message(message)
        self._prepare()
        now = now_ms()
        view = self._current_view(group, now)
        if view is None:
            return
        view = view.live(now)
        remote = [token for token in view.processes if token and token != self.token]
        packed = None
        if remote or view.named:
            # Before delivering anything, so a message too large fails as a whole.
            packed = frames.pack_message(message, self.limits.max_message_size)
        backlog = new_backlog(self.local)
        if view.own:
            own = [channel for channel, _ in view.own]
            deliver_to_local(self.local, self.stats, own, message, backlog)
        if packed is not None:
            await self._group_send_out(group, now, view, remote, packed)
        if backlog:
            await relieve(self.local, backlog)

    async def _group_send_out(
        self, group: str, now: int, view: GroupView, remote: list[str], packed: bytes
    ) -> None:
        """The part of a group send for other processes and named channels."""
        if remote:
            frame = frames.group_frame(group, now + self.expiry_ms, packed, view.version)
            for token in remote:
                sent = self._write(token, frame)
                if sent is Sent.FULL:
                    count_dropped(
                        self.stats, "a group message", f"process {token}", "it is not reading"
                    )
                elif sent is Sent.GONE:
                    self._count_gone(group)
        if view.named:
            named = [(channel, self.get_capacity(channel)) for channel, _ in view.named]
            try:
                pushed = await self._push(named, packed)
            except ChannelFull:  # the store is full: counted and logged
                return
            for channel in pushed.full:
                count_dropped(self.stats, "a group message", channel, "its queue is full")

    # -- direct sockets ------------------------------------------------------------------

    def attach_socket(self, channel: str, socket: DirectSocket) -> bool:
        if self._own_marker not in channel:
            return False
        self.local.attach(channel, socket)
        return True

    def detach_socket(self, channel: str) -> None:
        self.local.detach(channel)

    # -- lifecycle -----------------------------------------------------------------------

    async def flush(self) -> None:
        """Empty every channel and group of the space, and this process's queues."""
        self._prepare()
        await self._store_write(self.store.flush, "the store")
        self.local.clear()
        self._views.clear()

    async def close(self) -> None:
        """Send what waits for other processes (for ``EXIT_LINGER`` seconds at most)
        and stop reading on this loop. The process keeps its identity (its channels
        stay valid) and the layer can be used again; everything is released when the
        layer is garbage collected or the process ends."""
        deadline = time.monotonic() + EXIT_LINGER
        for link in list(self._links.values()):
            await link.wait_drained(max(0.0, deadline - time.monotonic()))
        self.named_queues.close_idle()
        if self._inbox is not None:
            self._inbox.detach(asyncio.get_running_loop())

    def _after_fork(self) -> None:
        """In a forked child: become a new process of the space, leaving the
        parent's sockets, store connection and registrations alone."""
        self._finalizer.detach()
        if self._inbox is not None:
            self._inbox.forget_sockets()
        for link in self._links.values():
            link.forget_socket()
        self._begin()


def _weakly(method: Callable[..., None]) -> Callable[..., None]:
    """``method``, without keeping its object alive."""
    reference = weakref.WeakMethod(method)

    def call(*args: Any) -> None:
        bound = reference()
        if bound is not None:
            bound(*args)

    return call


@dataclass
class _Owned:
    """What one layer instance holds in this process (see _teardown)."""

    store: Store
    links: dict[str, Link]
    token: str
    pid: int
    inbox: Inbox | None = None


def _teardown(owned: _Owned) -> None:
    """Garbage collection or process exit: stop listening, send what waits for other
    processes (for ``EXIT_LINGER`` seconds at most), leave the store."""
    if os.getpid() != owned.pid:
        return
    if owned.inbox is not None:
        owned.inbox.close()
    deadline = time.monotonic() + EXIT_LINGER
    for link in list(owned.links.values()):
        link.close(deadline)
    if owned.inbox is not None:  # it had channels, and maybe memberships
        store, token = owned.store, owned.token
        try:
            store.write_now(lambda c: store.reclaim(c, token))
        except Exception as exc:  # others reclaim it when they notice
            logger.debug("IPC layer teardown of %s: %r", token, exc)
    owned.store.close()


_instances: weakref.WeakSet[IPCChannelLayer] = weakref.WeakSet()


def _reset_in_child() -> None:
    for layer in list(_instances):
        layer._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
