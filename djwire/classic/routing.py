"""Classic routing: ``route(channel, consumer, path=r"^/...")``, ``route_class``, ``include``.

A route matches a message by its channel and by regex filters on its content
keys (``path`` most often). Named groups of the filters become keyword arguments
of the consumer. ``include`` nests a routing list and strips what its filters
matched from the front of each filtered value, so nested paths are relative.
Filters must be anchored with ``^`` so a prefix can never match by accident.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

Consumer = Callable[..., Any]
Routing = Iterable["BaseRoute"] | Mapping[str, Any] | str
Match = tuple[Consumer, dict[str, Any]]


def _compile_filters(filters: Mapping[str, Any]) -> dict[str, re.Pattern[str]]:
    compiled = {}
    for key, value in filters.items():
        if isinstance(value, re.Pattern):
            compiled[key] = value
            continue
        if not isinstance(value, str):
            raise ValueError(f"Filter for {key!r} must be a regex string or compiled pattern")
        if not value.startswith("^"):
            raise ValueError(f"Filter for {key!r} must start with ^ (it matches from the start)")
        compiled[key] = re.compile(value)
    return compiled


def _content_value(content: Mapping[str, Any], key: str) -> str | None:
    value = content.get(key)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _match_filters(
    filters: Mapping[str, re.Pattern[str]], content: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, int]] | None:
    """(kwargs from named groups, {key: matched length}) or None."""
    kwargs: dict[str, Any] = {}
    consumed: dict[str, int] = {}
    for key, regex in filters.items():
        value = _content_value(content, key)
        if value is None:
            return None
        found = regex.match(value)
        if found is None:
            return None
        kwargs.update({k: v for k, v in found.groupdict().items() if v is not None})
        consumed[key] = found.end()
    return kwargs, consumed


class BaseRoute:
    def match(self, channel: str, content: Mapping[str, Any]) -> Match | None:
        raise NotImplementedError

    def channel_names(self) -> set[str]:
        raise NotImplementedError


class Route(BaseRoute):
    """Send messages on ``channel`` whose content passes the filters to ``consumer``."""

    def __init__(self, channel: str | Iterable[str], consumer: Consumer | str, **filters: Any):
        self.channels = {channel} if isinstance(channel, str) else set(channel)
        self.consumer: Consumer = (
            import_string(consumer) if isinstance(consumer, str) else consumer
        )
        if not callable(self.consumer):
            raise ImproperlyConfigured(f"Consumer for {sorted(self.channels)} is not callable")
        self.filters = _compile_filters(filters)

    def match(self, channel: str, content: Mapping[str, Any]) -> Match | None:
        if channel not in self.channels:
            return None
        found = _match_filters(self.filters, content)
        if found is None:
            return None
        return self.consumer, found[0]

    def channel_names(self) -> set[str]:
        return set(self.channels)

    def __repr__(self) -> str:
        return f"route({sorted(self.channels)}, {self.consumer!r})"


class RouteClass(Route):
    """Route every channel a class-based consumer declares in ``channel_names()``."""

    def __init__(self, consumer: type[Any] | str, **filters: Any) -> None:
        consumer_class = import_string(consumer) if isinstance(consumer, str) else consumer
        if not hasattr(consumer_class, "channel_names"):
            raise ImproperlyConfigured(
                f"{consumer_class!r} has no channel_names(): route_class() takes a class-based "
                "classic consumer such as djwire.generic.websockets.WebsocketConsumer"
            )
        super().__init__(consumer_class.channel_names(), consumer_class, **filters)


class Include(BaseRoute):
    """A nested routing whose filters match a prefix that is stripped for the children."""

    def __init__(self, routing: Routing, **filters: Any) -> None:
        self.routing = load_routing(routing)
        self.filters = _compile_filters(filters)

    def match(self, channel: str, content: Mapping[str, Any]) -> Match | None:
        found = _match_filters(self.filters, content)
        if found is None:
            return None
        kwargs, consumed = found
        inner = dict(content)
        for key, length in consumed.items():
            value = _content_value(content, key) or ""
            inner[key] = value[length:]
        for child in self.routing:
            result = child.match(channel, inner)
            if result is not None:
                return result[0], {**kwargs, **result[1]}
        return None

    def channel_names(self) -> set[str]:
        names: set[str] = set()
        for child in self.routing:
            names |= child.channel_names()
        return names


def route(channel: str | Iterable[str], consumer: Consumer | str, **filters: Any) -> Route:
    return Route(channel, consumer, **filters)


def route_class(consumer: type[Any] | str, **filters: Any) -> RouteClass:
    return RouteClass(consumer, **filters)


def include(routing: Routing, **filters: Any) -> Include:
    return Include(routing, **filters)


def load_routing(routing: Routing) -> list[BaseRoute]:
    """Normalise a routing list, a ``{"channel": consumer}`` dict or a dotted path."""
    if isinstance(routing, str):
        try:
            routing = import_string(routing)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"Cannot import channel routing {routing!r}: {exc}"
            ) from exc
    if isinstance(routing, Mapping):
        return [Route(channel, consumer) for channel, consumer in routing.items()]
    routes = []
    for item in routing:
        if not isinstance(item, BaseRoute):
            raise ImproperlyConfigured(
                f"Classic routing entries must come from route(), route_class() or include(), "
                f"not {item!r}"
            )
        routes.append(item)
    return routes


class ClassicRouter:
    """Find the consumer for a message; the first matching route wins."""

    def __init__(self, routing: Routing) -> None:
        self.routes = load_routing(routing)

    def match(self, channel: str, content: Mapping[str, Any]) -> Match | None:
        for item in self.routes:
            result = item.match(channel, content)
            if result is not None:
                return result
        return None

    def channel_names(self) -> set[str]:
        names: set[str] = set()
        for item in self.routes:
            names |= item.channel_names()
        return names
