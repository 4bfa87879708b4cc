"""Routers: pick the application for a connection by scope type, URL path or channel name.

Same classes and behaviour as Django Channels 4. The classic (Channels 1)
``route``/``route_class``/``include`` helpers live in :mod:`djwire.classic.routing`;
this module hands them out too, lazily, because Channels 1 code imports them from here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from asgiref.compatibility import guarantee_single_callable
from asgiref.sync import markcoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, URLResolver
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils.module_loading import import_string

from djwire.exceptions import RouteNotFound
from djwire.typing import ASGIApp, ASGIReceive, ASGISend, Scope

if TYPE_CHECKING:
    from djwire.classic.routing import include, route, route_class

__all__ = [
    "ChannelNameRouter",
    "ProtocolTypeRouter",
    "URLRouter",
    "get_default_application",
    "include",
    "route",
    "route_class",
]

logger = logging.getLogger("djwire.routing")


#: Where get_default_application() looks when ASGI_APPLICATION is unset, in order.
#: Each returns the project's application or None. djwire's app config adds the
#: classic API's (it serves ``CHANNEL_LAYERS["default"]["ROUTING"]``).
_fallback_applications: list[Callable[[], ASGIApp | None]] = []


def add_default_application_source(source: Callable[[], ASGIApp | None]) -> None:
    """Let :func:`get_default_application` ask ``source`` when ASGI_APPLICATION is
    unset (once per source, however often it is added)."""
    if source not in _fallback_applications:
        _fallback_applications.append(source)


def get_default_application() -> ASGIApp:
    """The project's ASGI application.

    ``settings.ASGI_APPLICATION`` when set; otherwise the first application a
    registered source offers: with ``"djwire"`` in INSTALLED_APPS, the classic
    routing named by ``CHANNEL_LAYERS["default"]["ROUTING"]``, served next to
    Django's views.
    """
    from django.conf import settings

    path = getattr(settings, "ASGI_APPLICATION", None)
    if path:
        try:
            return import_string(path)  # type: ignore[no-any-return]
        except ImportError as exc:
            raise ImproperlyConfigured(f"Cannot import ASGI_APPLICATION module {path!r}") from exc
    for source in _fallback_applications:
        application = source()
        if application is not None:
            return application
    raise ImproperlyConfigured(
        "Cannot find ASGI_APPLICATION setting (and no classic ROUTING in "
        "CHANNEL_LAYERS['default'], which needs 'djwire' in INSTALLED_APPS). "
        "Set ASGI_APPLICATION = 'yourproject.asgi.application'."
    )


#: Classic (Channels 1) names that Channels 1 code imports from this module.
_CLASSIC_NAMES = frozenset({"route", "route_class", "include"})


def __getattr__(name: str) -> Any:
    if name in _CLASSIC_NAMES:
        from djwire.classic import routing

        return getattr(routing, name)
    raise AttributeError(f"module 'djwire.routing' has no attribute {name!r}")


class ProtocolTypeRouter:
    """Route by ``scope["type"]``: ``{"http": ..., "websocket": ...}``.

    Without a ``"lifespan"`` entry, lifespan events are answered here (and channel
    layers are closed at shutdown), so servers see a clean startup.
    """

    def __init__(self, application_mapping: Mapping[str, Any]) -> None:
        self.application_mapping = application_mapping

    @markcoroutinefunction
    def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> Awaitable[Any]:
        # Routers hand over the inner app's coroutine instead of awaiting it, so a
        # connection does not keep one suspended frame per router level alive.
        try:
            kind = scope["type"]
            application = self.application_mapping.get(kind)
            if application is not None:
                return application(scope, receive, send)  # type: ignore[no-any-return]
            if kind == "lifespan":
                return answer_lifespan(receive, send)
            raise ValueError(f"No application configured for scope type {kind!r}")
        except Exception as exc:
            return raise_when_awaited(exc)


async def raise_when_awaited(exc: BaseException) -> Any:
    """Servers expect an app's errors when they await it, not when they call it."""
    raise exc


async def answer_lifespan(receive: ASGIReceive, send: ASGISend) -> None:
    """Answer lifespan events for an app that needs no start-up work; close layers
    at shutdown."""
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            from djwire.layers import channel_layers

            for layer in list(channel_layers.backends.values()):
                try:
                    await layer.close()
                except Exception:
                    logger.exception("Closing channel layer %r at shutdown failed", layer)
            await send({"type": "lifespan.shutdown.complete"})
            return


def _prefix_pattern(pattern: Any) -> Any:
    """A copy of a path()/re_path() pattern that matches a prefix, for nested routers."""
    # Django keeps the source of a pattern in private attributes; there is no
    # public way to rebuild a pattern as a prefix (is_endpoint=False) match.
    if isinstance(pattern, RegexPattern):
        source = pattern._regex  # type: ignore[attr-defined]
    elif isinstance(pattern, RoutePattern):
        source = pattern._route  # type: ignore[attr-defined]
    else:
        raise ImproperlyConfigured(f"Unsupported pattern type in URLRouter: {type(pattern)}")
    return type(pattern)(source, pattern.name, is_endpoint=False)


class URLRouter:
    """Route by URL path with Django's ``path()``/``re_path()``; routers nest.

    Matched arguments are merged into ``scope["url_route"] = {"args", "kwargs"}``.
    When nothing matches, :class:`~djwire.exceptions.RouteNotFound` (a ValueError)
    is raised and the server closes the connection.
    """

    #: Tells an outer URLRouter that this application routes the rest of the path.
    _path_routing = True

    def __init__(self, routes: Sequence[URLPattern | URLResolver]) -> None:
        self.routes: list[URLPattern] = list(routes)  # type: ignore[arg-type]
        for item in self.routes:
            if isinstance(item, URLResolver) or not getattr(item, "callback", None):
                raise ImproperlyConfigured(
                    f"{item}: include() is not supported in URLRouter. "
                    "Use nested URLRouter instances instead."
                )
            if getattr(item.callback, "_path_routing", False) is True:
                item.pattern = _prefix_pattern(item.pattern)
        self._apps = [guarantee_single_callable(item.callback) for item in self.routes]  # type: ignore[no-untyped-call]

    @markcoroutinefunction
    def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> Awaitable[Any]:
        try:
            return self._route(scope, receive, send, 0)
        except Resolver404:
            raise  # an outer URLRouter is matching us synchronously: let it go on
        except Exception as exc:
            return raise_when_awaited(exc)

    def _route(
        self, scope: Scope, receive: ASGIReceive, send: ASGISend, start: int
    ) -> Awaitable[Any]:
        """The awaitable of the first route from ``start`` on that matches."""
        path = scope.get("path_remaining", scope.get("path"))
        if path is None:
            raise ValueError("No 'path' key in connection scope, cannot route URLs")
        outermost = "path_remaining" not in scope
        if outermost:
            root_path = scope.get("root_path", "")
            if root_path:
                if not path.startswith(root_path):
                    raise RouteNotFound(f"No route found for path {path!r}.", path=path)
                path = path[len(root_path) :]
        path = path.lstrip("/")
        for index in range(start, len(self.routes)):
            item, application = self.routes[index], self._apps[index]
            match = item.pattern.match(path)
            if not match:
                continue
            remaining, args, kwargs = match
            kwargs.update(item.default_args)
            outer = scope.get("url_route", {"args": (), "kwargs": {}})
            inner_scope = dict(
                scope,
                path_remaining=remaining,
                url_route={
                    "args": tuple(outer["args"]) + tuple(args),
                    "kwargs": {**outer["kwargs"], **kwargs},
                },
            )
            try:
                awaitable = application(inner_scope, receive, send)
            except Resolver404:
                continue  # a nested djwire router matched nothing: try our next route
            if getattr(application, "_djwire_routes_synchronously", False):
                return awaitable  # type: ignore[no-any-return]
            # Any other app (e.g. middleware around a nested router) may raise
            # Resolver404 only when awaited; Channels then tries the next route.
            return self._fall_through(awaitable, scope, receive, send, index + 1)
        if outermost:
            raise RouteNotFound(f"No route found for path {path!r}.", path=scope.get("path"))
        raise Resolver404(f"No route found for path {path!r}.")

    async def _fall_through(
        self,
        awaitable: Awaitable[Any],
        scope: Scope,
        receive: ASGIReceive,
        send: ASGISend,
        next_index: int,
    ) -> Any:
        try:
            return await awaitable
        except Resolver404:
            return await self._route(scope, receive, send, next_index)


#: djwire's own apps decide their route when called, so URLRouter can hand their
#: coroutine on without a wrapper frame.
URLRouter._djwire_routes_synchronously = True  # type: ignore[attr-defined]


class ChannelNameRouter:
    """Route ``"channel"`` scopes (from ``runworker``) by ``scope["channel"]``."""

    def __init__(self, application_mapping: Mapping[str, Any]) -> None:
        self.application_mapping = application_mapping

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> Any:
        if "channel" not in scope:
            raise ValueError(
                "ChannelNameRouter got a scope without a 'channel' key. Did you make sure "
                "it's only being used for 'channel' type messages?"
            )
        application = self.application_mapping.get(scope["channel"])
        if application is None:
            raise RouteNotFound(f"No application configured for channel name {scope['channel']!r}")
        return await application(scope, receive, send)
