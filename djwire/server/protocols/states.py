"""Every state machine of the server, with all of its transitions in this one module.

Three machines:

* :class:`HttpPhase` - where one HTTP/1.1 connection is between requests
  (drives the keep-alive, slow-loris and body timeouts).
* :class:`HttpAppState` - which messages an app may send for one HTTP request
  (ASGI HTTP spec, "Response Start" and "Response Body").
* :class:`WebSocketAppState` - which messages an app may send on a WebSocket
  (ASGI WebSocket spec: accept or close first, then send or close).

A message the table does not allow raises :class:`djwire.exceptions.UnexpectedMessage`
naming what was expected, e.g. ``Expected 'websocket.accept' or 'websocket.close', got
'websocket.send'``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from djwire.exceptions import UnexpectedMessage

S = TypeVar("S", bound=enum.Enum)


@dataclass(frozen=True, slots=True)
class Table(Generic[S]):
    """Transitions ``state -> {event: next state}`` plus what errors should name."""

    name: str
    moves: Mapping[S, Mapping[str, S]]
    #: Events to list in the error for each state; defaults to every allowed event.
    #: (Extensions such as ``websocket.http.response.start`` are allowed but not
    #: advertised, so errors read like the core ASGI spec.)
    advertised: Mapping[S, tuple[str, ...]]

    def next(self, state: S, event: str) -> S:
        try:
            return self.moves[state][event]
        except KeyError:
            # "http.response.body:last" is the table's name for a final chunk;
            # the app sent "http.response.body".
            got = event.partition(":")[0]
            raise UnexpectedMessage(got, self.expected(state), state=state.name) from None

    def expected(self, state: S) -> tuple[str, ...]:
        if state in self.advertised:
            return self.advertised[state]
        return tuple(self.moves.get(state, {}))

    def allows(self, state: S, event: str) -> bool:
        return event in self.moves.get(state, {})


class HttpPhase(enum.Enum):
    """Where an HTTP connection is; events are things the parser or app did."""

    IDLE = "idle"  # no request in progress (fresh or kept alive)
    HEAD = "head"  # request head arriving
    BUSY = "busy"  # a request is being answered
    CLOSED = "closed"


HTTP_PHASES: Table[HttpPhase] = Table(
    "http-connection",
    {
        HttpPhase.IDLE: {
            "bytes": HttpPhase.HEAD,
            "request": HttpPhase.BUSY,
            "close": HttpPhase.CLOSED,
        },
        HttpPhase.HEAD: {
            "bytes": HttpPhase.HEAD,
            "request": HttpPhase.BUSY,
            "close": HttpPhase.CLOSED,
        },
        HttpPhase.BUSY: {
            "bytes": HttpPhase.BUSY,
            "request": HttpPhase.BUSY,  # pipelined: queued behind the current one
            "done-idle": HttpPhase.IDLE,
            "done-pipelined": HttpPhase.BUSY,
            "done-partial": HttpPhase.HEAD,
            "close": HttpPhase.CLOSED,
        },
        HttpPhase.CLOSED: {"bytes": HttpPhase.CLOSED, "close": HttpPhase.CLOSED},
    },
    {},
)


class HttpAppState(enum.Enum):
    """What an app answering one HTTP request has sent so far."""

    START = "start"  # nothing yet
    BODY = "body"  # response started, body in progress
    DONE = "done"  # last body chunk sent


HTTP_APP: Table[HttpAppState] = Table(
    "http-response",
    {
        HttpAppState.START: {"http.response.start": HttpAppState.BODY},
        HttpAppState.BODY: {
            "http.response.body": HttpAppState.BODY,
            "http.response.body:last": HttpAppState.DONE,
        },
        HttpAppState.DONE: {},
    },
    {
        HttpAppState.BODY: ("http.response.body",),
        HttpAppState.DONE: (),
    },
)


class WebSocketAppState(enum.Enum):
    """What an app handling one WebSocket has sent so far."""

    CONNECTING = "connecting"  # handshake waiting for accept or close
    RESPONDING = "responding"  # denial response (websocket.http.response.*) in progress
    OPEN = "open"  # accepted
    CLOSED = "closed"  # app closed, denied, or the client went away


WEBSOCKET_APP: Table[WebSocketAppState] = Table(
    "websocket",
    {
        WebSocketAppState.CONNECTING: {
            "websocket.accept": WebSocketAppState.OPEN,
            "websocket.close": WebSocketAppState.CLOSED,
            "websocket.http.response.start": WebSocketAppState.RESPONDING,
        },
        WebSocketAppState.RESPONDING: {
            "websocket.http.response.body": WebSocketAppState.RESPONDING,
            "websocket.http.response.body:last": WebSocketAppState.CLOSED,
        },
        WebSocketAppState.OPEN: {
            "websocket.send": WebSocketAppState.OPEN,
            "websocket.close": WebSocketAppState.CLOSED,
        },
        WebSocketAppState.CLOSED: {},
    },
    {
        WebSocketAppState.CONNECTING: ("websocket.accept", "websocket.close"),
        WebSocketAppState.RESPONDING: ("websocket.http.response.body",),
    },
)
