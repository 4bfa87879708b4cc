"""Version guards: every private attribute of another library that djwire touches.

djwire relies on a few names that Django and asgiref do not promise to keep (the
server's uses of websockets' internals are guarded in tests/server/test_private_apis.py).
Each is listed in ``GUARDS`` with where djwire uses it; when a new version drops or
changes one, its test fails naming the attribute and the djwire code to change, instead
of djwire failing somewhere far from the cause.

To add one: write a ``check`` that exercises the attribute the way djwire uses it
(raising or returning False when it is gone), and append a ``PrivateApi`` to ``GUARDS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class PrivateApi:
    #: The library and the attribute, e.g. "Django: SessionBase._session_key".
    name: str
    #: Where djwire uses it (file and function), so the failure says what to fix.
    used_in: str
    #: Exercises the attribute as djwire does; raises or returns False when it is gone.
    check: Callable[[], Any]


# -- Django ----------------------------------------------------------------------------------


def session_key_is_settable() -> bool:
    # A channel session whose record is missing forgets its key on load; djwire puts
    # the key back through _session_key before creating the record.
    from django.contrib.sessions.backends.cache import SessionStore

    session = SessionStore()
    session._session_key = "chn0123456789abcdef"
    return session.session_key == "chn0123456789abcdef"


def regex_pattern_source_rebuilds_a_prefix_pattern() -> bool:
    from django.urls.resolvers import RegexPattern

    pattern = RegexPattern(r"^chat/(?P<room>\w+)/", name="chat")
    prefix = RegexPattern(pattern._regex, pattern.name, is_endpoint=False)
    return pattern._regex == r"^chat/(?P<room>\w+)/" and prefix.match("chat/red/more") == (
        "more",
        (),
        {"room": "red"},
    )


def route_pattern_source_rebuilds_a_prefix_pattern() -> bool:
    from django.urls.resolvers import RoutePattern

    pattern = RoutePattern("chat/<int:room>/", name="chat")
    prefix = RoutePattern(pattern._route, pattern.name, is_endpoint=False)
    return pattern._route == "chat/<int:room>/" and prefix.match("chat/7/more") == (
        "more",
        (),
        {"room": 7},
    )


def lazy_object_wrapped_and_setup() -> bool:
    # AuthMiddleware fills scope["user"] (a LazyObject) by assigning _wrapped; an
    # unfilled one calls _setup, which explains itself.
    from django.utils.functional import LazyObject

    class Lazy(LazyObject):
        def _setup(self) -> None:
            raise LookupError("not ready")

    lazy = Lazy()
    try:
        lazy.anything  # noqa: B018
    except LookupError:
        pass
    else:
        return False
    lazy._wrapped = type("User", (), {"username": "ada"})()
    return bool(lazy.username == "ada")


# -- asgiref ---------------------------------------------------------------------------------


def communicator_future_and_output_queue() -> bool:
    # djwire.testing.ApplicationCommunicator.receive_output waits on both the app's
    # task (self.future) and self.output_queue; its class default for _future keeps
    # asgiref's __del__ working when __init__ never ran.
    from asgiref.testing import ApplicationCommunicator

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "hello"})

    async def run() -> bool:
        communicator = ApplicationCommunicator(app, {"type": "test"})
        task = communicator.future
        await task
        message = communicator.output_queue.get_nowait()
        return isinstance(task, asyncio.Task) and message == {"type": "hello"}

    unstarted = ApplicationCommunicator.__new__(ApplicationCommunicator)
    unstarted._future = None
    unstarted.__del__()  # what runs for an instance whose __init__ never ran
    return asyncio.run(run()) and "_future" in vars(ApplicationCommunicator(app, {}))


GUARDS = [
    PrivateApi(
        "Django: SessionBase._session_key (setter)",
        "djwire/classic/sessions.py, _persist_channel_session",
        session_key_is_settable,
    ),
    PrivateApi(
        "Django: RegexPattern._regex and RegexPattern(..., is_endpoint=False).match()",
        "djwire/routing.py, _prefix_pattern and URLRouter._route",
        regex_pattern_source_rebuilds_a_prefix_pattern,
    ),
    PrivateApi(
        "Django: RoutePattern._route and RoutePattern(..., is_endpoint=False).match()",
        "djwire/routing.py, _prefix_pattern and URLRouter._route",
        route_pattern_source_rebuilds_a_prefix_pattern,
    ),
    PrivateApi(
        "Django: LazyObject._wrapped and LazyObject._setup",
        "djwire/auth.py, UserLazyObject and AuthMiddleware.resolve_scope",
        lazy_object_wrapped_and_setup,
    ),
    PrivateApi(
        "asgiref: ApplicationCommunicator._future, .future and .output_queue",
        "djwire/testing/application.py, ApplicationCommunicator",
        communicator_future_and_output_queue,
    ),
]


@pytest.mark.parametrize("api", GUARDS, ids=lambda api: api.name.split(":")[1].strip())
def test_private_api_is_still_there(api: PrivateApi) -> None:
    try:
        works = api.check()
    except Exception as exc:
        pytest.fail(f"{api.name} is gone or changed ({exc!r}); fix {api.used_in}")
    assert works, f"{api.name} no longer behaves as djwire expects; fix {api.used_in}"
