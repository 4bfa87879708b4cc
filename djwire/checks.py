"""System checks (``manage.py check``) that explain a bad CHANNEL_LAYERS or ASGI_APPLICATION.

==============  ==========================================================================
djwire.E001     CHANNEL_LAYERS is not a dict
djwire.E002     a CHANNEL_LAYERS entry is not a dict
djwire.E003     an entry has no BACKEND
djwire.E004     BACKEND cannot be imported
djwire.E005     BACKEND is not a class (or other callable)
djwire.E006     CONFIG or TEST_CONFIG is not a dict
djwire.E007     CONFIG has a key the backend does not accept
djwire.E008     ROUTING (classic routing) cannot be imported
djwire.E010     ASGI_APPLICATION is not a dotted path string
djwire.E011     ASGI_APPLICATION cannot be imported
djwire.E012     ASGI_APPLICATION is not callable
djwire.E020     DJWIRE_SERVER (the interface server's settings) is invalid
djwire.W001     an entry has a key djwire does not know (probably a typo)
djwire.W010     several server processes, and a layer that each process keeps to itself
djwire.W011     (``check --deploy``) a layer that each process keeps to itself
==============  ==========================================================================

W010 is also logged by ``djwire serve --workers N`` when it starts (the check is tagged
:data:`djwire.extensions.STARTUP_CHECKS`). A layer says whether processes share it in
its class attribute ``shared_between_processes``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string

from djwire.extensions import STARTUP_CHECKS, server_processes
from djwire.layers.manager import KNOWN_KEYS

#: Layer backends of other packages, and what to write instead.
_PORTED_BACKENDS = {
    "channels.layers.InMemoryChannelLayer": "djwire.layers.InMemoryChannelLayer",
    "channels_redis.core.RedisChannelLayer": "djwire.layers.redis.RedisChannelLayer",
    "channels_redis.pubsub.RedisPubSubChannelLayer": "djwire.layers.redis.RedisChannelLayer",
}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _import_hint(path: str) -> str:
    if path in _PORTED_BACKENDS:
        return f"When porting from Django Channels, use {_PORTED_BACKENDS[path]!r}."
    if path.startswith("djwire.layers.redis"):
        return "The Redis layer needs redis-py: pip install 'djwire[redis]'."
    return (
        "Give the dotted path of a channel layer class, e.g. 'djwire.layers.InMemoryChannelLayer'."
    )


def _check_config_keys(alias: str, backend: Any, config: dict[str, Any]) -> list[CheckMessage]:
    """Keys of CONFIG that the backend's constructor would reject."""
    try:
        signature = inspect.signature(backend)
    except (TypeError, ValueError):
        return []  # a builtin or C class: nothing to compare with
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    if accepts_any:
        return []
    try:
        signature.bind(**config)
    except TypeError as exc:
        known = [
            name
            for name, p in signature.parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        return [
            Error(
                f"CHANNEL_LAYERS[{alias!r}]['CONFIG'] does not fit {backend.__qualname__}: {exc}.",
                hint=f"{backend.__qualname__} accepts: {', '.join(known) or 'no options'}.",
                id="djwire.E007",
            )
        ]
    return []


def check_layer(alias: str, entry: Any) -> list[CheckMessage]:
    """The problems of one CHANNEL_LAYERS entry."""
    where = f"CHANNEL_LAYERS[{alias!r}]"
    if not isinstance(entry, dict):
        return [
            Error(
                f"{where} must be a dict, not {type(entry).__name__}.",
                hint="Write {'BACKEND': 'djwire.layers.InMemoryChannelLayer'}.",
                id="djwire.E002",
            )
        ]
    messages: list[CheckMessage] = []
    for key in sorted(set(entry) - KNOWN_KEYS, key=str):
        close = difflib.get_close_matches(str(key), sorted(KNOWN_KEYS), n=1)
        messages.append(
            Warning(
                f"{where} has an unknown key {key!r}; it is ignored.",
                hint=(f"Did you mean {close[0]!r}? " if close else "")
                + f"Known keys: {', '.join(sorted(KNOWN_KEYS))}.",
                id="djwire.W001",
            )
        )
    for key in ("CONFIG", "TEST_CONFIG"):
        if key in entry and not isinstance(entry[key], dict):
            messages.append(
                Error(
                    f"{where}[{key!r}] must be a dict of keyword arguments for the backend, "
                    f"not {type(entry[key]).__name__}.",
                    hint="For example {'capacity': 100, 'expiry': 60}.",
                    id="djwire.E006",
                )
            )
    messages += _check_routing(where, entry.get("ROUTING"))
    path = entry.get("BACKEND")
    if not path:
        messages.append(
            Error(
                f"{where} has no BACKEND.",
                hint="Add 'BACKEND': 'djwire.layers.InMemoryChannelLayer' (one process) or "
                "'djwire.layers.redis.RedisChannelLayer' (several).",
                id="djwire.E003",
            )
        )
        return messages
    if not isinstance(path, str):
        messages.append(
            Error(
                f"{where}['BACKEND'] must be a dotted path string, not {type(path).__name__}.",
                hint=_import_hint(""),
                id="djwire.E004",
            )
        )
        return messages
    try:
        backend = import_string(path)
    except ImportError as exc:
        messages.append(
            Error(
                f"{where}['BACKEND'] {path!r} cannot be imported ({_describe(exc)}).",
                hint=_import_hint(path),
                id="djwire.E004",
            )
        )
        return messages
    if not callable(backend):
        messages.append(
            Error(
                f"{where}['BACKEND'] {path!r} is not a class but a {type(backend).__name__}.",
                hint=_import_hint(""),
                id="djwire.E005",
            )
        )
        return messages
    for key in ("CONFIG", "TEST_CONFIG"):
        if isinstance(entry.get(key), dict):
            messages += _check_config_keys(alias, backend, entry[key])
    return messages


def _check_routing(where: str, routing: Any) -> list[CheckMessage]:
    if not isinstance(routing, str) or not routing:
        return []
    try:
        import_string(routing)
    except Exception as exc:  # any import-time error of the user's module
        return [
            Error(
                f"{where}['ROUTING'] {routing!r} cannot be imported ({_describe(exc)}).",
                hint="Give the dotted path of a classic routing list, e.g. "
                "'myproject.routing.channel_routing'.",
                id="djwire.E008",
            )
        ]
    return []


@register()
def check_channel_layers(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Check ``settings.CHANNEL_LAYERS``."""
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if layers is None:
        return []
    if not isinstance(layers, dict):
        return [
            Error(
                f"CHANNEL_LAYERS must be a dict of aliases, not {type(layers).__name__}.",
                hint="Write CHANNEL_LAYERS = {'default': "
                "{'BACKEND': 'djwire.layers.InMemoryChannelLayer'}}.",
                id="djwire.E001",
            )
        ]
    messages: list[CheckMessage] = []
    for alias, entry in layers.items():
        messages += check_layer(alias, entry)
    return messages


@register()
def check_asgi_application(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Check ``settings.ASGI_APPLICATION``: importable, and an application."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if path is None:
        return []
    hint = "Set ASGI_APPLICATION = 'myproject.asgi.application' (the module-level name)."
    if not isinstance(path, str) or not path:
        return [
            Error(
                f"ASGI_APPLICATION must be a dotted path string, not {path!r}.",
                hint=hint,
                id="djwire.E010",
            )
        ]
    try:
        application = import_string(path)
    except Exception as exc:  # whatever importing the user's module raises
        return [
            Error(
                f"ASGI_APPLICATION {path!r} cannot be imported ({_describe(exc)}).",
                hint=hint,
                id="djwire.E011",
            )
        ]
    if not callable(application):
        return [
            Error(
                f"ASGI_APPLICATION {path!r} is a {type(application).__name__}, not an "
                "ASGI application.",
                hint="Point it at the application object, e.g. a ProtocolTypeRouter, "
                "not at its module or a string.",
                id="djwire.E012",
            )
        ]
    return []


@register()
def check_server_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Check ``settings.DJWIRE_SERVER`` now, not only when a server starts."""
    from djwire.server.options import project_settings

    try:
        project_settings()
    except ValueError as exc:
        return [
            Error(
                str(exc),
                hint="See docs/server.md, 'Settings by name', for the names and types.",
                id="djwire.E020",
            )
        ]
    return []


#: What to use instead of a layer each process keeps to itself.
_SHARED_HINT = (
    "Use a layer shared between processes, such as "
    "'djwire.layers.redis.RedisChannelLayer', or serve from one process."
)


def _process_local_layers() -> list[tuple[str, str]]:
    """(alias, BACKEND) of each configured layer that declares it is not shared."""
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if not isinstance(layers, dict):
        return []
    found = []
    for alias, entry in layers.items():
        path = entry.get("BACKEND") if isinstance(entry, dict) else None
        if not isinstance(path, str):
            continue
        try:
            backend = import_string(path)
        except Exception:  # reported by check_channel_layers (E004)
            continue
        # A class that says nothing is not judged: only a declared False warns.
        if getattr(backend, "shared_between_processes", None) is False:
            found.append((str(alias), path))
    return found


@register(STARTUP_CHECKS)
def check_layers_shared_by_server_processes(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Several server processes (``djwire serve --workers``) on a layer none share."""
    processes = server_processes()
    if processes < 2:
        return []
    return [
        Warning(
            f"CHANNEL_LAYERS[{alias!r}] ({path}) keeps its channels and groups inside one "
            f"process, but {processes} server processes serve this application: a group "
            "message sent in one process never reaches members connected to another (in a "
            "chat, users on different processes never see each other).",
            hint=_SHARED_HINT,
            id="djwire.W010",
        )
        for alias, path in _process_local_layers()
    ]


@register(deploy=True)
def check_layers_for_deployment(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """``check --deploy``: a layer each process keeps to itself, in production."""
    if server_processes() > 1:
        return []  # W010 says it already
    return [
        Warning(
            f"CHANNEL_LAYERS[{alias!r}] ({path}) keeps its channels and groups inside one "
            "process: with several processes (djwire serve --workers, runworker) they do "
            "not reach each other's consumers.",
            hint=_SHARED_HINT,
            id="djwire.W011",
        )
        for alias, path in _process_local_layers()
    ]
