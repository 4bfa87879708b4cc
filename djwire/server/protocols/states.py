"""Every state machine of the server, each with all of its transitions in one table.

Four machines:

* :class:`HttpPhase` - where one HTTP/1.1 connection is between requests
  (drives the keep-alive, slow-loris and body timeouts).
* :class:`HttpAppState` - what the app answering one HTTP request has sent
  (ASGI HTTP spec, "Response Start" and "Response Body").
* :class:`WebSocketAppState` - what the app on a WebSocket has sent (ASGI WebSocket
  spec: accept or close first, then send or close).
* :class:`LifespanState` - where the ASGI lifespan protocol is (lifespan spec 2.0).

A table has two kinds of event. *Messages* are the ASGI message types an application
sends (:meth:`Table.next`): one the table does not allow raises
:class:`djwire.exceptions.UnexpectedMessage` naming what was expected, e.g.
``Expected 'websocket.accept' or 'websocket.close', got 'websocket.send'``. *Server
events* are what the server itself does or sees (:meth:`Table.after`), such as
refusing a handshake or the last chunk of an answer; an application cannot name them,
and one the table does not allow is a bug in the server (:class:`StateError`).

As in h11's ``_state.py``, a session's state changes only through its table: the
sessions never assign a state of their own choosing (a test reads their source to
keep it so). Two self-loops on the hot path are checked inline instead of looked up,
since they change nothing: ``websocket.send`` while OPEN and a body chunk that is not
the last while an HTTP answer is in BODY; the tests check the tables agree.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from djwire.exceptions import UnexpectedMessage

S = TypeVar("S", bound="State")


class State(enum.Enum):
    """A state of one of the machines below.

    Hashed by identity, as members are singletons: ``Enum.__hash__`` hashes the
    member's name in Python code, a cost every table lookup would pay (about 2 % of
    the CPU of a minimal HTTP request, measured with callgrind).
    """

    __hash__ = object.__hash__


class StateError(RuntimeError):
    """The server moved a state machine in a way its table does not allow (a bug)."""


@dataclass(frozen=True, slots=True)
class Table(Generic[S]):
    """Transitions ``state -> {event: next state}``, for app messages and server events."""

    name: str
    #: ASGI messages the application may send in each state.
    messages: Mapping[S, Mapping[str, S]]
    #: The server's own events in each state.
    server: Mapping[S, Mapping[str, S]]
    #: Messages to list in the error for a state, when not every allowed one.
    #: (Extensions such as ``websocket.http.response.start`` are allowed but not
    #: advertised, so errors read like the core ASGI spec.)
    advertised: Mapping[S, tuple[str, ...]] = field(default_factory=dict)

    def next(self, state: S, message_type: str) -> S:
        """The state after the application sent a message of ``message_type``."""
        try:
            return self.messages[state][message_type]
        except KeyError:
            raise UnexpectedMessage(message_type, self.expected(state), state=state.name) from None

    def after(self, state: S, event: str) -> S:
        """The state after the server's own ``event``."""
        try:
            return self.server[state][event]
        except KeyError:
            raise StateError(f"{self.name}: no {event!r} in state {state.name}") from None

    def expected(self, state: S) -> tuple[str, ...]:
        if state in self.advertised:
            return self.advertised[state]
        return tuple(self.messages.get(state, {}))


class HttpPhase(State):
    """Where an HTTP connection is; every event is the server's (parser, app, clock)."""

    IDLE = "idle"  # no request in progress (fresh or kept alive)
    HEAD = "head"  # request head arriving
    BUSY = "busy"  # a request is being answered
    CLOSED = "closed"  # closing, lingering after a final answer, or handed to a WebSocket


HTTP_PHASES: Table[HttpPhase] = Table(
    "http-connection",
    messages={},
    server={
        HttpPhase.IDLE: {
            "bytes": HttpPhase.HEAD,  # the first byte of a request head
            "request": HttpPhase.BUSY,  # a whole head in one read
            "upgrade": HttpPhase.CLOSED,  # handed over to a WebSocket session
            "close": HttpPhase.CLOSED,
        },
        HttpPhase.HEAD: {
            "request": HttpPhase.BUSY,
            "upgrade": HttpPhase.CLOSED,
            "close": HttpPhase.CLOSED,
        },
        HttpPhase.BUSY: {
            "request": HttpPhase.BUSY,  # pipelined: queued behind the current one
            "done-idle": HttpPhase.IDLE,  # answered; nothing more received
            "done-pipelined": HttpPhase.BUSY,  # answered; the next one was queued
            "done-partial": HttpPhase.HEAD,  # answered; the next head is arriving
            "upgrade": HttpPhase.CLOSED,  # a queued upgrade, its turn now
            "close": HttpPhase.CLOSED,
        },
        HttpPhase.CLOSED: {"close": HttpPhase.CLOSED},
    },
)


class HttpAppState(State):
    """What an app answering one HTTP request has sent so far."""

    START = "start"  # nothing yet
    BODY = "body"  # response started, body in progress
    DONE = "done"  # the answer is over: last chunk sent, or the server gave up on it


HTTP_APP: Table[HttpAppState] = Table(
    "http-response",
    messages={
        HttpAppState.START: {"http.response.start": HttpAppState.BODY},
        HttpAppState.BODY: {"http.response.body": HttpAppState.BODY},
        HttpAppState.DONE: {},
    },
    server={
        # The app failed: the server answers in its stead (500), or cuts the answer.
        HttpAppState.START: {"error": HttpAppState.DONE},
        HttpAppState.BODY: {
            "end": HttpAppState.DONE,  # the chunk just sent was the last
            "error": HttpAppState.DONE,
        },
    },
)


class WebSocketAppState(State):
    """What an app handling one WebSocket has sent so far."""

    CONNECTING = "connecting"  # handshake waiting for accept or close
    RESPONDING = "responding"  # denial response (websocket.http.response.*) in progress
    OPEN = "open"  # accepted
    CLOSED = "closed"  # the app closed or denied, or the server ended it


WEBSOCKET_APP: Table[WebSocketAppState] = Table(
    "websocket",
    messages={
        WebSocketAppState.CONNECTING: {
            "websocket.accept": WebSocketAppState.OPEN,
            "websocket.close": WebSocketAppState.CLOSED,
            "websocket.http.response.start": WebSocketAppState.RESPONDING,
        },
        WebSocketAppState.RESPONDING: {
            "websocket.http.response.body": WebSocketAppState.RESPONDING,
        },
        WebSocketAppState.OPEN: {
            "websocket.send": WebSocketAppState.OPEN,
            "websocket.close": WebSocketAppState.CLOSED,
        },
        WebSocketAppState.CLOSED: {},
    },
    server={
        # Invalid handshake, handshake timeout, shutdown, or the app ended first.
        WebSocketAppState.CONNECTING: {"refuse": WebSocketAppState.CLOSED},
        # The denial response is over: its last chunk was sent, or the app ended.
        WebSocketAppState.RESPONDING: {"end": WebSocketAppState.CLOSED},
        # The app ended with the socket open: the server closes it.
        WebSocketAppState.OPEN: {"close": WebSocketAppState.CLOSED},
    },
    advertised={
        WebSocketAppState.CONNECTING: ("websocket.accept", "websocket.close"),
    },
)


class LifespanState(State):
    """Where the lifespan protocol is; the server sends startup, then shutdown."""

    IDLE = "idle"  # nothing sent yet (or lifespan is off)
    STARTING = "starting"  # lifespan.startup sent, waiting for the answer
    STARTED = "started"  # startup complete: the app speaks lifespan
    FAILED = "failed"  # startup failed: the server does not serve
    STOPPING = "stopping"  # lifespan.shutdown sent, waiting for the answer
    STOPPED = "stopped"  # shutdown answered (complete or failed)


LIFESPAN: Table[LifespanState] = Table(
    "lifespan",
    messages={
        LifespanState.STARTING: {
            "lifespan.startup.complete": LifespanState.STARTED,
            "lifespan.startup.failed": LifespanState.FAILED,
        },
        LifespanState.STOPPING: {
            "lifespan.shutdown.complete": LifespanState.STOPPED,
            "lifespan.shutdown.failed": LifespanState.STOPPED,
        },
    },
    server={
        LifespanState.IDLE: {"startup": LifespanState.STARTING},
        LifespanState.STARTED: {"shutdown": LifespanState.STOPPING},
    },
)
