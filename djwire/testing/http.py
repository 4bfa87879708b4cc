"""``HttpCommunicator``: test an HTTP application without a server."""

# The timeout= arguments are the public API of Channels' and asgiref's communicators.
# ruff: noqa: ASYNC109

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlparse

from djwire.typing import ASGIApp

from .application import ApplicationCommunicator

__all__ = ["HttpCommunicator"]


class HttpCommunicator(ApplicationCommunicator):
    """Send one HTTP request to an ASGI application and collect the response.

    For a streamed response read piece by piece (Server-Sent Events), call
    ``send_input({"type": "http.request", ...})`` and ``receive_output()`` directly.
    """

    def __init__(
        self,
        application: ASGIApp,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Iterable[tuple[bytes, bytes]] | None = None,
    ) -> None:
        parsed = urlparse(path)
        self.scope: dict[str, Any] = {
            "type": "http",
            "http_version": "1.1",
            "method": method.upper(),
            "path": unquote(parsed.path),
            "query_string": parsed.query.encode("utf-8"),
            "headers": list(headers or []),
        }
        if not isinstance(body, bytes):
            raise TypeError("body must be bytes")
        self.body = body
        self.sent_request = False
        super().__init__(application, self.scope)

    async def get_response(self, timeout: float = 1) -> dict[str, Any]:
        """The whole response: ``{"status", "headers", "body"}`` (body joined)."""
        if not self.sent_request:
            self.sent_request = True
            await self.send_input({"type": "http.request", "body": self.body})
        start = await self.receive_output(timeout)
        if start["type"] != "http.response.start":
            raise AssertionError(f"Expected 'http.response.start', got {start['type']!r}")
        chunks = []
        while True:
            chunk = await self.receive_output(timeout)
            if chunk["type"] != "http.response.body":
                raise AssertionError(f"Expected 'http.response.body', got {chunk['type']!r}")
            if not isinstance(chunk.get("body", b""), bytes):
                raise AssertionError("Response body chunk is not bytes")
            chunks.append(chunk.get("body", b""))
            if not chunk.get("more_body", False):
                break
        response = {key: value for key, value in start.items() if key != "type"}
        response["body"] = b"".join(chunks)
        response.setdefault("headers", [])
        return response
