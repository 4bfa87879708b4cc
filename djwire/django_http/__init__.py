"""Django's HTTP handling at close to WSGI cost: sync views in one thread-pool hop.

Django's ``ASGIHandler`` runs a sync view through its async middleware chain: each
``MiddlewareMixin`` hook, the view, the signals and ``response.close()`` are
separate ``sync_to_async`` hops into one shared thread. For a sync view that is
several thread switches per request, all serialized on that one thread.

:class:`DjangoHTTPApp` keeps Django's behaviour - the same middleware (loaded in sync
mode, as under WSGI), request class, signals and error handling - but runs the whole
request/response cycle of a sync view in *one* hop to a thread pool, like a WSGI
worker thread. Async views, and projects with async-only middleware, keep going
through Django's own ``ASGIHandler``. :func:`accelerate` swaps it in where the app
is (or routes HTTP to) a plain ``ASGIHandler``.

It stands on its own, beside the server and the core: it imports Django and the
bottom of djwire only, so the interface server (``djwire serve``, ``runserver``) and
gateway-mode workers (``runworker --connections``) both put it in front of a
project's Django views.
"""

from __future__ import annotations

import asyncio
import copy
import io
import logging
import tempfile
from typing import IO, Any

from djwire.typing import ASGIReceive as Receive
from djwire.typing import ASGISend as Send
from djwire.typing import Message

from .thread_pool import ThreadPool

logger = logging.getLogger("djwire.django_http")

#: Sync streaming responses are pulled from their iterator in batches of about this
#: many bytes per thread hop.
STREAM_BATCH_BYTES = 64 * 1024
#: Paths whose view kind (sync or async) is remembered.
DECISION_CACHE_SIZE = 4096


class DjangoHTTPApp:
    """ASGI app for Django HTTP requests: sync views in one thread hop."""

    def __init__(self, fallback: Any, *, threads: int = 16) -> None:
        from django.core.handlers.base import BaseHandler

        #: Django's own ASGIHandler, for async views.
        self.fallback = fallback
        self.sync_handler = BaseHandler()
        self.sync_handler.load_middleware(is_async=False)
        self.pool = ThreadPool(threads, "djwire-view")
        self._sync_paths: dict[str, bool] = {}

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._serves_sync(scope):
            await self.fallback(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client left before its request was complete
        # The request body lives as long as the response (a streaming view may read
        # it late), as under Django's ASGIHandler; a large one is a temporary file.
        try:
            loop = asyncio.get_running_loop()
            status, headers, content, response = await self.pool.run(self._respond, scope, body)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            if response is None:
                await send({"type": "http.response.body", "body": content})
                return
            try:
                await self._stream(response, send, loop)
            finally:
                await self.pool.run(response.close)
        finally:
            body.close()

    # -- which requests take the fast path ------------------------------------------

    def _serves_sync(self, scope: dict[str, Any]) -> bool:
        path = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        known = self._sync_paths.get(path)
        if known is None:
            known = _view_is_sync(path)
            if len(self._sync_paths) < DECISION_CACHE_SIZE:
                self._sync_paths[path] = known
        return known

    # -- in the thread ---------------------------------------------------------------

    def _respond(
        self, scope: dict[str, Any], body: IO[bytes]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, Any]:
        """The whole Django cycle for one request, as a WSGI worker thread does it."""
        from django.core import signals
        from django.core.exceptions import RequestDataTooBig
        from django.core.handlers.asgi import ASGIHandler, ASGIRequest, get_script_prefix
        from django.http import HttpResponse, HttpResponseBadRequest
        from django.urls import set_script_prefix

        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=ASGIHandler, scope=scope)
        response: Any
        try:
            request = ASGIRequest(scope, body)
        except UnicodeDecodeError:
            logger.warning("Bad Request (UnicodeDecodeError)", exc_info=True)
            response = HttpResponseBadRequest()
        except RequestDataTooBig:
            response = HttpResponse("413 Payload too large", status=413)
        else:
            response = self.sync_handler.get_response(request)
        headers = _response_headers(response)
        if response.streaming:
            return response.status_code, headers, b"", response
        content = response.content
        response.close()  # fires request_finished: closes old DB connections here
        return response.status_code, headers, content, None

    async def _stream(self, response: Any, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        if response.is_async:
            async for part in response.streaming_content:
                chunk = _as_bytes(part)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        else:
            iterator = iter(response.streaming_content)
            while True:
                batch = await self.pool.run(_next_batch, iterator)
                if batch is None:
                    break
                await send({"type": "http.response.body", "body": batch, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _next_batch(iterator: Any) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    for part in iterator:
        data = _as_bytes(part)
        parts.append(data)
        size += len(data)
        if size >= STREAM_BATCH_BYTES:
            break
    else:
        if not parts:
            return None
    return b"".join(parts)


def _as_bytes(part: Any) -> bytes:
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        return part.encode()
    return bytes(part)


def _response_headers(response: Any) -> list[tuple[bytes, bytes]]:
    """Headers and cookies the way Django's ASGIHandler encodes them."""
    headers = []
    for name, value in response.items():
        headers.append(
            (
                name.encode("ascii") if isinstance(name, str) else bytes(name),
                value.encode("latin-1") if isinstance(value, str) else bytes(value),
            )
        )
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return headers


async def _read_body(receive: Receive) -> IO[bytes] | None:
    """The request body as a file, as Django's ASGIHandler reads it.

    A body that arrives in one message (every GET, most forms) is already in
    memory: it is wrapped as it is. Longer ones spool to disk past
    FILE_UPLOAD_MAX_MEMORY_SIZE, like Django's handler does.
    """
    from django.conf import settings

    message: Message = await receive()
    if message["type"] == "http.disconnect":
        return None
    if not message.get("more_body", False):
        return io.BytesIO(message.get("body") or b"")
    # Closed by the response (or below); a context manager cannot span that.
    body = tempfile.SpooledTemporaryFile(  # noqa: SIM115
        max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b"
    )
    while True:
        chunk = message.get("body")
        if chunk:
            body.write(chunk)
        if not message.get("more_body", False):
            break
        message = await receive()
        if message["type"] == "http.disconnect":
            body.close()
            return None
    body.seek(0)
    return body


def _view_is_sync(path: str) -> bool:
    """True when the URLconf sends ``path`` to a sync view (or to no view: 404)."""
    from asgiref.sync import iscoroutinefunction
    from django.urls import Resolver404, get_resolver

    try:
        match = get_resolver().resolve(path)
    except Resolver404:
        return True
    return not iscoroutinefunction(match.func)


def _middleware_sync_capable() -> bool:
    from django.conf import settings
    from django.utils.module_loading import import_string

    for path in settings.MIDDLEWARE:
        middleware = import_string(path)
        if not getattr(middleware, "sync_capable", True):
            return False
    return True


def accelerate(app: Any, *, threads: int = 16) -> Any:
    """``app`` with Django's plain ASGIHandler replaced by :class:`DjangoHTTPApp`.

    Looks at the app itself, the ``"http"`` entry of a ProtocolTypeRouter (djwire's
    or Channels'), and the app inside Django's static-files handler. Anything else,
    including subclasses of ASGIHandler (which may change its behaviour), is kept.
    """
    from django.core.handlers.asgi import ASGIHandler

    if type(app) is ASGIHandler:
        if not _middleware_sync_capable():
            logger.info("Django fast path off: some middleware is async-only")
            return app
        return DjangoHTTPApp(app, threads=threads)
    mapping = getattr(app, "application_mapping", None)
    if isinstance(mapping, dict) and "http" in mapping:
        http_app = accelerate(mapping["http"], threads=threads)
        if http_app is not mapping["http"]:
            router = copy.copy(app)
            router.application_mapping = {**mapping, "http": http_app}
            return router
        return app
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    if type(app) is ASGIStaticFilesHandler:
        inner = accelerate(app.application, threads=threads)
        if inner is not app.application:
            wrapper = copy.copy(app)
            wrapper.application = inner
            return wrapper
    return app
