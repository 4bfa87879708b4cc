"""djwire's interface server: HTTP/1.1 and WebSocket for any ASGI 3 application.

Run it as ``djwire serve proj.asgi:application`` (or ``python -m djwire serve``),
through ``manage.py runserver``, or from Python::

    from djwire.server import Config, Server, loops

    server = Server(Config(app=application, port=8000))
    loops.run(server.serve())

Layout: ``protocols/`` is the sans-I/O layer (bytes in, events and bytes out; no
asyncio), with every state machine in ``protocols/states``; ``http_session`` and
``websocket_session`` are the thin asyncio glue, on what they share in
``connection``; ``config`` holds every limit; ``server``, ``supervisor``,
``lifespan`` and ``cli`` run it; ``django_http`` serves sync Django views in one
thread-pool hop. The server knows ASGI, not djwire's application side: what it
offers applications beyond ASGI is described in :mod:`djwire.extensions`.
"""

from __future__ import annotations

from djwire.exceptions import ClientDisconnected
from djwire.server.config import Config
from djwire.server.server import Server

__all__ = ["ClientDisconnected", "Config", "Server"]
