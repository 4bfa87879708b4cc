"""The asyncio server: bind, serve connections, shut down gracefully.

Shutdown (SIGTERM/SIGINT or :meth:`Server.request_shutdown`): stop accepting; idle
HTTP connections close; in-flight HTTP answers finish and then close; WebSockets get
a 1001 "going away" close and their apps a ``websocket.disconnect``; apps get
``graceful_shutdown_timeout`` seconds, then their tasks are cancelled; finally the
lifespan shutdown runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import threading
from collections.abc import Callable, Sequence
from typing import Any

from djwire.server.asgi_types import ASGIApp
from djwire.server.config import Config
from djwire.server.http_session import HttpSession
from djwire.server.lifespan import Lifespan
from djwire.server.state import ServerState

logger = logging.getLogger("djwire.server")


def bind_socket(config: Config) -> socket.socket:
    """The listening socket ``config`` asks for (inherited fd, Unix path or TCP)."""
    if config.fd is not None:
        sock = socket.socket(fileno=config.fd)
        sock.setblocking(False)
        return sock
    if config.uds is not None:
        path = config.uds
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)  # stale socket of a previous run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        os.chmod(path, 0o666)
        sock.listen(config.backlog)
        sock.setblocking(False)
        return sock
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError:
        sock.close()
        raise
    sock.listen(config.backlog)
    sock.setblocking(False)
    return sock


def describe(sock: socket.socket) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    host, port = name[0], name[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class Server:
    """One server process serving ``config.app``; ``await serve()`` runs until shutdown.

    ``Server(config, app)``, the form of earlier releases, serves ``app`` instead
    (it replaces ``config.app``, typically the import string ``app`` was loaded from).
    """

    def __init__(self, config: Config, app: ASGIApp | None = None) -> None:
        config.validate()
        if app is not None:
            config = config.replace(app=app)
        elif isinstance(config.app, str):
            raise TypeError(
                f"Server() serves an application object, not the name {config.app!r}: "
                "import it first (djwire.server.run.run_config does both)"
            )
        self.config = config
        self.app: ASGIApp = config.app  # type: ignore[assignment]
        self.state: ServerState | None = None
        self.sockets: list[socket.socket] = []
        self.started = asyncio.Event()
        self.exit_code = 0
        self._servers: list[asyncio.AbstractServer] = []
        self._exit: asyncio.Event | None = None
        self._lifespan: Lifespan | None = None
        self._force = False
        #: Called once the server is listening (e.g. to print a banner).
        self.on_started: Callable[[Server], None] | None = None

    # -- life cycle ------------------------------------------------------------------

    async def serve(
        self, sockets: Sequence[socket.socket] | None = None, *, install_signals: bool = True
    ) -> int:
        """Serve until shutdown; return a process exit code."""
        if not await self.start(sockets):
            return self.exit_code
        if install_signals:
            self._install_signal_handlers()
        assert self._exit is not None
        await self._exit.wait()
        await self.shutdown()
        return self.exit_code

    async def start(self, sockets: Sequence[socket.socket] | None = None) -> bool:
        """Run lifespan startup and start listening; False if startup failed."""
        loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        state = self.state = ServerState(self.config, loop)
        # Bind first: a taken port should fail before the app starts up.
        self.sockets = list(sockets) if sockets else [bind_socket(self.config)]
        self._lifespan = Lifespan(self.app, self.config.lifespan)
        if not await self._lifespan.startup():
            self.exit_code = 3
            return False
        if self._lifespan.supported:
            state.lifespan_state = self._lifespan.state

        def session() -> HttpSession:
            return HttpSession(state)

        for sock in self.sockets:
            if sock.family == socket.AF_UNIX:
                server = await loop.create_unix_server(
                    session, sock=sock, backlog=self.config.backlog
                )
            else:
                server = await loop.create_server(session, sock=sock, backlog=self.config.backlog)
            self._servers.append(server)
        state.start_clock()
        for sock in self.sockets:
            logger.info("djwire serving on %s (pid %d)", describe(sock), os.getpid())
        self.started.set()
        if self.on_started is not None:
            self.on_started(self)
        return True

    def request_shutdown(self) -> None:
        """Begin a graceful shutdown (safe to call from signal handlers)."""
        if self._exit is not None:
            if self._exit.is_set():
                # A second signal: stop waiting for apps.
                self._force = True
            self._exit.set()

    async def shutdown(self) -> None:
        state = self.state
        assert state is not None
        state.shutting_down = True
        for server in self._servers:
            server.close()
        for session in list(state.sessions):
            session.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.graceful_shutdown_timeout
        while (state.tasks or any(s.busy() for s in state.sessions)) and not self._force:
            if loop.time() >= deadline:
                logger.warning(
                    "Graceful shutdown timed out after %ss: cancelling %d app task(s)",
                    self.config.graceful_shutdown_timeout,
                    len(state.tasks) + state.busy_sessions(),
                )
                break
            await asyncio.sleep(0.02)
        tasks = set(state.tasks)
        for session in state.sessions:
            task = session.app_task()
            if task is not None and not task.done():
                tasks.add(task)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        # Give closing handshakes a moment, then drop whatever is left.
        close_deadline = loop.time() + min(1.0, self.config.ws_close_timeout)
        while state.sessions and loop.time() < close_deadline and not self._force:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        for session in list(state.sessions):
            session.abort()
        assert self._lifespan is not None
        await self._lifespan.shutdown(self.config.graceful_shutdown_timeout)
        state.stop_clock()
        for server in self._servers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        if self.config.uds is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.config.uds)
        logger.info("djwire stopped (pid %d)", os.getpid())

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_shutdown)

    # -- introspection -------------------------------------------------------------

    @property
    def addresses(self) -> list[Any]:
        return [sock.getsockname() for sock in self.sockets]
