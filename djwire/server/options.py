"""Config fields by name: from text (``--set NAME=VALUE``) and from Django's settings.

Three layers decide a server's settings, the later winning: :class:`Config`'s
defaults; a Django project's ``DJWIRE_SERVER = {"field": value, ...}`` setting; the
command line. The setting can only be read once the application is imported (that
is what configures Django), so the command line's choices are kept apart as the
names it set (``explicit``) and applied over the setting afterwards.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any, Literal

from djwire.server.config import Config

#: Where to listen and how many processes: decided by the command that starts the
#: server (``djwire serve`` options, runserver's addrport), never by the settings.
COMMAND_LINE_ONLY = frozenset({"app", "host", "port", "uds", "fd", "workers", "backlog"})

SETTING = "DJWIRE_SERVER"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@functools.cache
def _hints() -> dict[str, Any]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def field_names(*, exclude: Collection[str] = ("app",)) -> list[str]:
    """Config fields in declaration order, minus ``exclude``."""
    return [name for name in _hints() if name not in exclude]


def convert(name: str, value: object, *, valid: Collection[str] | None = None) -> Any:
    """``value`` as Config field ``name`` takes it; text is parsed, anything else checked.

    ``valid`` limits the names accepted (default: every field but ``app``).
    Raises ValueError naming the field and, for an unknown name, the valid ones.
    """
    names = field_names() if valid is None else list(valid)
    if name not in names:
        raise ValueError(f"unknown server setting {name!r}; valid names: {', '.join(names)}")
    hint = _hints()[name]
    optional = _is_union(hint) and type(None) in typing.get_args(hint)
    if optional:
        (hint,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        if optional:
            return None
        raise ValueError(f"{name} cannot be None")
    try:
        return _convert(hint, value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: {exc}") from None


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _convert(hint: Any, value: object) -> Any:
    text = value.strip() if isinstance(value, str) else None
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        candidate = text if text is not None else value
        if candidate in choices:
            return candidate
        raise ValueError(f"expected one of {', '.join(map(str, choices))}, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text is not None:
            return int(text)
        raise TypeError(f"expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if text is not None:
            return float(text)
        raise TypeError(f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError(f"expected a string, got {value!r}")
    if origin is tuple:
        items: list[Any]
        if text is not None:
            items = [part.strip() for part in text.split(",") if part.strip()]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise TypeError(f"expected a list or comma-separated text, got {value!r}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item) for item in items)
        if len(items) != len(args):
            raise ValueError(f"expected {len(args)} values, got {len(items)}")
        return tuple(_convert(arg, item) for arg, item in zip(args, items, strict=True))
    raise TypeError(f"cannot be set by name (type {hint})")


def parse_assignment(text: str, *, valid: Collection[str] | None = None) -> tuple[str, Any]:
    """``"send_timeout=10"`` -> ``("send_timeout", 10.0)``; ValueError if invalid."""
    name, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"expected NAME=VALUE, got {text!r}")
    name = name.strip().replace("-", "_")
    return name, convert(name, value, valid=valid)


def project_settings() -> dict[str, Any]:
    """The ``DJWIRE_SERVER`` setting, checked, when the app's import configured Django.

    Empty for an application that is not a Django project (Django's settings were
    never configured), so a bare ASGI app does not load Django's settings.
    """
    if "django.conf" not in sys.modules:
        return {}
    from django.conf import settings

    if not settings.configured:
        return {}
    raw = getattr(settings, SETTING, None)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{SETTING} must be a dict of server settings, got {type(raw).__name__}")
    valid = field_names(exclude=COMMAND_LINE_ONLY)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name in COMMAND_LINE_ONLY:
            raise ValueError(
                f"{SETTING}[{name!r}]: where to listen and how many processes are "
                "given on the command line, not in the settings"
            )
        try:
            values[name] = convert(name, value, valid=valid)
        except ValueError as exc:
            raise ValueError(f"{SETTING}: {exc}") from None
    return values


def with_project_settings(config: Config, explicit: Collection[str]) -> Config:
    """``config`` with ``DJWIRE_SERVER`` applied to every field not in ``explicit``."""
    settings = {k: v for k, v in project_settings().items() if k not in explicit}
    return config.replace(**settings) if settings else config
