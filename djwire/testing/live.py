"""Serve the project over real sockets for a test: djwire's own server, in a thread.

:class:`LiveServer` runs :class:`djwire.server.server.Server` on its own event loop in
a background thread, on a free loopback port. Because it is the same process:

* the test database is shared, even SQLite in memory (Django's test databases in
  memory use a shared cache, so every thread's connection sees the same data);
* the in-memory channel layer is shared, so a test can ``group_send`` to consumers
  serving real sockets without Redis;
* settings overridden in a test apply to the server too.

:class:`DjwireLiveServerTestCase` (alias ``ChannelsLiveServerTestCase``) starts one
per test class, as Django Channels' test case does with daphne in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar

from django.apps import apps
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.test.testcases import TransactionTestCase
from django.test.utils import modify_settings
from django.utils.functional import classproperty

from djwire.typing import ASGIApp

__all__ = ["ChannelsLiveServerTestCase", "DjwireLiveServerTestCase", "LiveServer"]

logger = logging.getLogger("djwire.testing")

#: Server options for tests: quiet, and quick to stop.
TEST_SERVER_OPTIONS: dict[str, Any] = {
    "access_log": False,
    "graceful_shutdown_timeout": 5.0,
    "lifespan": "auto",
}


class LiveServerError(RuntimeError):
    """The live server could not start (the cause is chained)."""


class LiveServer:
    """djwire's interface server in a background thread, for tests.

    ``with LiveServer(app) as server: ... server.url ... server.ws_url``. ``host`` is
    where it listens (loopback unless you say otherwise); ``port=0`` picks a free one.
    Other keyword arguments are :class:`djwire.server.config.Config` fields.
    """

    def __init__(
        self, application: ASGIApp, host: str = "127.0.0.1", port: int = 0, **options: Any
    ) -> None:
        self.application = application
        self.host = host
        self.port = port
        self.options = {**TEST_SERVER_OPTIONS, **options}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://{self._url_host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.port}"

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def start(self, timeout: float = 30) -> None:
        """Start serving; returns once the port is listening."""
        if self._thread is not None:
            raise RuntimeError("This live server was already started")
        self._thread = threading.Thread(target=self._run, name="djwire-live-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise LiveServerError(f"The live server did not start within {timeout} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise LiveServerError(f"The live server failed to start: {self._error}") from (
                self._error
            )

    def stop(self, timeout: float = 30) -> None:
        """Shut down gracefully (WebSockets get 1001) and wait for the thread."""
        loop, server, thread = self._loop, self._server, self._thread
        if loop is not None and server is not None and not loop.is_closed():
            # RuntimeError: the loop has just finished by itself.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(server.request_shutdown)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("The live server thread did not stop within %s s", timeout)

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the server thread ---------------------------------------------------------------

    def _run(self) -> None:
        from djwire.server import loops

        try:
            loops.run(self._serve(), self.options.get("loop", "auto"))
        except BaseException as exc:
            self._error = exc
        finally:
            from django.db import connections

            # This thread's own database connections (Django closes them itself in
            # LiveServerThread for the same reason: test databases get dropped).
            connections.close_all()
            self._ready.set()

    async def _serve(self) -> None:
        from djwire.server.app_loader import load
        from djwire.server.config import Config
        from djwire.server.server import Server

        config = Config(app=self.application, host=self.host, port=self.port, **self.options)
        app = load(
            self.application,
            django_fast_path=config.django_fast_path,
            threads=config.django_threads,
        )
        server = Server(config, app)

        def on_started(started: Any) -> None:
            self.port = started.addresses[0][1]
            self._ready.set()

        server.on_started = on_started
        self._loop = asyncio.get_running_loop()
        self._server = server
        code = await server.serve(install_signals=False)
        if not self._ready.is_set():
            raise LiveServerError(f"the server exited with code {code} before listening")


def make_application(*, static_wrapper: Callable[[ASGIApp], ASGIApp] | None = None) -> ASGIApp:
    """The project's application (``get_default_application()``), optionally wrapped."""
    from djwire.routing import get_default_application

    application = get_default_application()
    if static_wrapper is not None:
        application = static_wrapper(application)
    return application


class DjwireLiveServerTestCase(TransactionTestCase):
    """A TransactionTestCase with the project served over real sockets.

    ``self.live_server_url`` (``http://localhost:PORT``) and ``self.live_server_ws_url``
    (``ws://localhost:PORT``) point at djwire's server, listening on loopback and
    serving ``get_default_application()`` (and static files, as ``runserver`` does).
    Use a real client: ``websockets``, a browser driven by Playwright or Selenium.
    """

    #: The host name in the URLs (added to ALLOWED_HOSTS); the server listens on loopback.
    host: ClassVar[str] = "localhost"
    serve_static: ClassVar[bool] = True
    static_wrapper: ClassVar[Callable[[ASGIApp], ASGIApp]] = ASGIStaticFilesHandler  # type: ignore[assignment]
    #: Extra djwire server options (Config fields), e.g. {"ws_max_message_size": 4096}.
    server_options: ClassVar[dict[str, Any]] = {}

    _live_server: ClassVar[LiveServer]
    _live_server_modified_settings: ClassVar[modify_settings]

    @classproperty
    def live_server_url(cls) -> str:
        return f"http://{cls.host}:{cls._live_server.port}"

    @classproperty
    def live_server_ws_url(cls) -> str:
        return f"ws://{cls.host}:{cls._live_server.port}"

    @classmethod
    def get_application(cls) -> ASGIApp:
        """What the live server serves; override to serve something else."""
        wrap = cls.static_wrapper
        if not (cls.serve_static and apps.is_installed("django.contrib.staticfiles")):
            wrap = None  # type: ignore[assignment]
        return make_application(static_wrapper=wrap)

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls._live_server_modified_settings = modify_settings(ALLOWED_HOSTS={"append": cls.host})
        cls._live_server_modified_settings.enable()
        listen_on = "127.0.0.1" if cls.host == "localhost" else cls.host
        cls._live_server = LiveServer(cls.get_application(), host=listen_on, **cls.server_options)
        try:
            cls._live_server.start()
        except BaseException:
            cls._live_server_modified_settings.disable()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls._live_server.stop()
        cls._live_server_modified_settings.disable()
        super().tearDownClass()


#: Django Channels' name for the same test case.
ChannelsLiveServerTestCase = DjwireLiveServerTestCase
