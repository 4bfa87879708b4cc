"""The messages gateways and connection workers exchange over the channel layer.

Every client connection held by a gateway has a *connection channel*, made by the
gateway (``djwire.conn.<process>!<id>``). It is the ``channel_name`` of the
connection's consumer wherever that consumer runs, so groups hold connection
channels and group messages reach the gateway first: a ``websocket.send`` (or a
classic ``{"text": ...}``) goes straight to the socket, anything else is passed
to the worker that runs the connection.

::

    gateway                              worker
    -------                              ------
    OPEN     -> connections channel      (any worker takes it)
             <- CLAIM     (conn channel)  this worker would run it, under ``epoch``
    CONFIRM  -> worker channel            it does: start the application (WebSockets;
                                          an HTTP request starts at once)
    EVENT    -> worker channel            one client event or layer message, numbered
             <- REPLY     (conn channel)  ASGI events for the client (``event``, or
                                          ``events``: a response head with its first body)
    CREDIT   -> worker channel            REPLYs sent on to the client: send more
             <- websocket.send            straight to the socket
             <- ACKS      (gateway channel) events handled, and the consumer's state
             <- RELEASE   (conn channel)  a stopping worker hands the connection back
    REVOKE   -> worker channel            a claim that came too late: drop it
             <- ALIVE     (gateways group) heartbeats of workers
    ALIVE    -> workers group             heartbeats of gateways

A connection is *owned* by one worker at a time; each new owner gets a new
``epoch``, and messages of an older epoch are ignored. A worker starts the
application only once the gateway has confirmed its claim, so an OPEN posted
twice (the first seemed lost) never runs ``connect()`` twice. The gateway numbers the
events of a connection (``seq``) and keeps each until the worker acknowledges it
as handled, so when a worker dies (no heartbeat for ``worker_timeout``) or hands
the connection back, the next owner gets the consumer's last state and every
event not yet handled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPEN = "djwire.gateway.open"
EVENT = "djwire.gateway.event"
CLAIM = "djwire.gateway.claim"
CONFIRM = "djwire.gateway.confirm"
REPLY = "djwire.gateway.reply"
CREDIT = "djwire.gateway.credit"
ACKS = "djwire.gateway.acks"
RELEASE = "djwire.gateway.release"
REVOKE = "djwire.gateway.revoke"
ALIVE = "djwire.gateway.alive"

#: Group every gateway's own channel belongs to; workers send heartbeats to it.
GATEWAYS_GROUP = "djwire.gateways"
#: Group every connection worker's channel belongs to; gateways send heartbeats to it.
WORKERS_GROUP = "djwire.workers"
#: Prefixes of the channels gateways and workers make.
CONNECTION_PREFIX = "djwire.conn."
GATEWAY_PREFIX = "djwire.gateway."
WORKER_PREFIX = "djwire.worker."

#: REPLYs of one connection a worker may have in flight before it waits for CREDIT (a
#: streamed response to a slow client must not overflow the connection's channel).
REPLY_WINDOW = 64
#: The gateway gives this much CREDIT back at a time, per connection.
CREDIT_EVERY = 32

#: Scope keys that do not cross to workers: the server's lifespan state, in its process.
LOCAL_SCOPE_KEYS = frozenset({"state"})


def portable_scope(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a connection scope a worker can be sent (serializable data).

    ASGI extensions that are plain data (``websocket.http.response``: ``{}``) cross;
    server-side objects (djwire's direct socket) do not.
    """
    portable = {key: value for key, value in scope.items() if key not in LOCAL_SCOPE_KEYS}
    extensions = scope.get("extensions") or {}
    portable["extensions"] = {
        name: value for name, value in extensions.items() if isinstance(value, dict)
    }
    portable["headers"] = [[name, value] for name, value in scope.get("headers", ())]
    for key in ("client", "server"):
        if portable.get(key) is not None:
            portable[key] = list(portable[key])
    return portable


def worker_scope(portable: dict[str, Any]) -> dict[str, Any]:
    """Undo the list-for-tuple changes a serializer makes, as servers send them."""
    scope = dict(portable)
    scope["headers"] = [(bytes(name), bytes(value)) for name, value in scope.get("headers", ())]
    for key in ("client", "server"):
        if scope.get(key) is not None:
            scope[key] = tuple(scope[key])
    if "subprotocols" in scope:
        scope["subprotocols"] = list(scope["subprotocols"])
    return scope


def is_direct_reply(message: dict[str, Any]) -> bool:
    """A message a gateway writes to the socket itself, with no worker in the path:
    ``{"type": "websocket.send", "text"|"bytes": ...}``, or a classic reply
    (no ``type``: ``text``/``bytes``/``accept``/``close``)."""
    kind = message.get("type")
    if kind == "websocket.send":
        return len(message) == 2 and ("text" in message or "bytes" in message)
    return kind is None and bool(message) and message.keys() <= _CLASSIC_REPLY_KEYS


_CLASSIC_REPLY_KEYS = frozenset({"text", "bytes", "accept", "close"})


def classic_reply_events(content: dict[str, Any], accepted: bool) -> list[dict[str, Any]]:
    """The ASGI events a classic (Channels 1) reply-channel message stands for.

    ``{"accept": True}`` accepts; ``{"accept": False}``, or ``close`` before any data,
    rejects an unaccepted socket; ``text``/``bytes`` accept it first if needed and
    send a frame; ``close`` (True or a code) closes after the data.
    """
    events: list[dict[str, Any]] = []
    has_data = content.get("text") is not None or content.get("bytes") is not None
    close = content.get("close")
    if not accepted:
        if content.get("accept") is False or (close and not has_data):
            return [{"type": "websocket.close"}]
        if content.get("accept") or has_data:
            events.append({"type": "websocket.accept"})
    if content.get("text") is not None:
        events.append({"type": "websocket.send", "text": content["text"]})
    elif content.get("bytes") is not None:
        events.append({"type": "websocket.send", "bytes": content["bytes"]})
    if close:
        events.append({"type": "websocket.close", "code": 1000 if close is True else int(close)})
    return events
