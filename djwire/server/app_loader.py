"""Find the ASGI application a command line or a config names."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from djwire.server.asgi_types import ASGIApp


class AppLoadError(Exception):
    """The app string does not name an importable ASGI application."""


def import_app(spec: str) -> ASGIApp:
    """``"package.module:attribute"``; the attribute defaults to ``application``.

    Names ending in ``()`` are factories and are called: ``proj.asgi:make_app()``.
    """
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "application"
    factory = attribute.endswith("()")
    if factory:
        attribute = attribute[:-2]
    if "" not in sys.path and "." not in sys.path:
        # Like `python -m`: the current directory is importable (uvicorn, daphne).
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppLoadError(f"Could not import module {module_name!r}: {exc}") from exc
        raise
    target: Any = module
    try:
        for part in attribute.split("."):
            target = getattr(target, part)
    except AttributeError as exc:
        raise AppLoadError(f"Module {module_name!r} has no attribute {attribute!r}") from exc
    if factory:
        target = target()
    if not callable(target):
        raise AppLoadError(f"{spec!r} is not callable, so not an ASGI application")
    return target  # type: ignore[no-any-return]


def load(app: str | ASGIApp, *, django_fast_path: bool = True, threads: int = 16) -> ASGIApp:
    """The app to serve: imported if a string, Django's HTTP handler sped up."""
    loaded = import_app(app) if isinstance(app, str) else app
    if django_fast_path:
        from djwire.django_http import accelerate

        loaded = accelerate(loaded, threads=threads)
    return loaded
