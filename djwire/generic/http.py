"""``AsyncHttpConsumer``: HTTP endpoints written as consumers, with streaming responses.

``handle(body)`` gets the whole request body and answers with ``send_response`` or
with ``send_headers`` plus one or more ``send_body`` calls. As in Django Channels 4.
Two things differ, both so that streaming works as Channels documents it:

* if ``handle()`` returns after starting a response it has not finished
  (``send_body(..., more_body=True)``), the consumer stays alive: channel-layer
  messages keep reaching its handlers, which finish the response later (long-poll,
  Server-Sent Events). It ends when the response is finished or the client leaves.
  Channels stops the consumer when ``handle()`` returns, cutting such responses off.
* the request body is bounded (``max_body_size``, setting
  ``DJWIRE_HTTP_MAX_BODY_SIZE``, default 2.5 MiB): a larger body is answered with
  413 without being buffered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from djwire.consumer import AsyncConsumer
from djwire.db import aclose_old_connections
from djwire.exceptions import StopConsumer
from djwire.typing import ASGIReceive, ASGISend, Scope

__all__ = ["DEFAULT_MAX_BODY_SIZE", "AsyncHttpConsumer"]

#: Default request body limit in bytes: Django's DATA_UPLOAD_MAX_MEMORY_SIZE default.
DEFAULT_MAX_BODY_SIZE = 2_621_440

HeadersArg = Iterable[tuple[bytes, bytes]] | Mapping[bytes, bytes] | None


class AsyncHttpConsumer(AsyncConsumer):
    """Async HTTP consumer: override ``handle(body)``."""

    #: Largest request body accepted, in bytes; a larger one gets 413 Payload Too
    #: Large. None means ``settings.DJWIRE_HTTP_MAX_BODY_SIZE`` (default 2.5 MiB;
    #: that setting may be None for no limit).
    max_body_size: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start_request()

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        # An instance used directly as the ASGI app (no as_asgi()) serves one
        # request after another, as in Channels: each starts from fresh state.
        self._start_request()
        await super().__call__(scope, receive, send)

    def _start_request(self) -> None:
        self.body: list[bytes] = []
        self._body_size = 0
        self._handle_started = False
        self._response_started = False
        self._response_finished = False
        self._disconnected = False

    # -- sending -----------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            self._response_started = True
        elif kind == "http.response.body" and not message.get("more_body", False):
            self._response_finished = True
        await super().send(message)

    async def send_headers(self, *, status: int = 200, headers: HeadersArg = None) -> None:
        """Start the response. ``headers`` is a list of ``(name, value)`` byte pairs
        or a dict. Servers send nothing until the first ``send_body``."""
        if headers is None:
            header_list: list[tuple[bytes, bytes]] = []
        elif isinstance(headers, Mapping):
            header_list = list(headers.items())
        else:
            header_list = list(headers)
        await self.send({"type": "http.response.start", "status": status, "headers": header_list})

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        """Send (part of) the body; ``more_body=True`` keeps the response open."""
        if not isinstance(body, bytes):
            raise TypeError(f"Body is not bytes (got {type(body).__name__})")
        await self.send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def send_response(self, status: int, body: bytes, **kwargs: Any) -> None:
        """Send a whole response at once (``headers=`` as for ``send_headers``)."""
        await self.send_headers(status=status, **kwargs)
        await self.send_body(body)

    # -- to override -------------------------------------------------------------------

    async def handle(self, body: bytes) -> None:
        """Called with the complete request body; answer with the ``send_*`` methods."""
        raise NotImplementedError(
            "Subclasses of AsyncHttpConsumer must provide a handle() method."
        )

    async def disconnect(self) -> None:
        """Called once when the consumer ends (response done or client gone); do not
        send from here."""

    # -- ASGI events -------------------------------------------------------------------

    def get_max_body_size(self) -> int | None:
        if self.max_body_size is not None:
            return self.max_body_size
        return getattr(settings, "DJWIRE_HTTP_MAX_BODY_SIZE", DEFAULT_MAX_BODY_SIZE)

    async def http_request(self, message: dict[str, Any]) -> None:
        """Collect the body; when complete, call ``handle()``."""
        if self._handle_started:
            return  # a client may not send more after the last chunk; ignore it
        if not self.body and self._declared_length_too_large():
            await self._reject_too_large()
        chunk = message.get("body", b"")
        if chunk:
            self._body_size += len(chunk)
            limit = self.get_max_body_size()
            if limit is not None and self._body_size > limit:
                await self._reject_too_large()
            self.body.append(chunk)
        if message.get("more_body", False):
            return
        self._handle_started = True
        try:
            await self.handle(b"".join(self.body))
        except BaseException:
            await self._call_disconnect()
            raise
        self.body = []  # the body may be large; a streaming consumer lives on
        await self._end_if_done()

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        """The client went away: clean up and stop."""
        await self._call_disconnect()
        await aclose_old_connections()
        raise StopConsumer()

    async def dispatch(self, message: dict[str, Any]) -> None:
        await super().dispatch(message)
        if self._handle_started and message.get("type") != "http.request":
            # A layer message may have finished a response left open by handle().
            await self._end_if_done()

    # -- internals -----------------------------------------------------------------------

    async def _end_if_done(self) -> None:
        if self._response_started and not self._response_finished:
            return  # streaming: stay alive for later messages
        await self._call_disconnect()
        raise StopConsumer()

    async def _call_disconnect(self) -> None:
        if not self._disconnected:
            self._disconnected = True
            await self.disconnect()

    def _declared_length_too_large(self) -> bool:
        limit = self.get_max_body_size()
        if limit is None:
            return False
        for name, value in self.scope.get("headers", ()):
            if name.lower() == b"content-length":
                try:
                    return int(value) > limit
                except ValueError:
                    return False
        return False

    async def _reject_too_large(self) -> None:
        self.body = []
        await self.send_response(
            413,
            b"Request body too large",
            headers=[(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
        )
        raise StopConsumer()
