"""Build channel layers from ``settings.CHANNEL_LAYERS``, lazily, once per alias.

Without a ``CHANNEL_LAYERS`` setting there is no layer (``get_channel_layer()`` is
None, as in Channels), except in processes run by djwire's own server and worker
commands, which set ``DJWIRE_IPC_DEFAULT=1``: there the "default" alias is the IPC
layer on the project's default shared space, so ``runserver``, ``runworker`` and
``djwire serve --workers N`` of one project reach each other with nothing
configured. docs/layers.md ("Without CHANNEL_LAYERS") explains why it is not
everywhere.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from djwire.exceptions import InvalidChannelLayerError
from djwire.extensions import IMPLICIT_IPC_LAYER

from .base import BaseChannelLayer

logger = logging.getLogger("djwire.layers")

DEFAULT_CHANNEL_LAYER = "default"
#: The backend of the implicit "default" alias (see the module docstring).
IMPLICIT_BACKEND = "djwire.layers.ipc.IPCChannelLayer"

#: Keys of a CHANNEL_LAYERS entry that djwire understands.
KNOWN_KEYS = frozenset({"BACKEND", "CONFIG", "TEST_CONFIG", "ROUTING"})


class ChannelLayerManager:
    """``channel_layers[alias]`` -> the configured layer, built on first use."""

    def __init__(self) -> None:
        self.backends: dict[str, BaseChannelLayer] = {}
        self._lock = threading.Lock()
        self._implicit: dict[str, dict[str, Any]] | None = None
        setting_changed.connect(self._reset_backends)

    def _reset_backends(self, setting: str, **kwargs: Any) -> None:
        if setting == "CHANNEL_LAYERS":
            self.backends = {}
            self._implicit = None

    @property
    def configs(self) -> dict[str, dict[str, Any]]:
        # Read at call time, never at import time, so settings may change in tests.
        from django.conf import settings

        if hasattr(settings, "CHANNEL_LAYERS"):  # set, even to {}: exactly that
            return settings.CHANNEL_LAYERS or {}
        if os.environ.get(IMPLICIT_IPC_LAYER) != "1":
            return {}
        if self._implicit is None:
            self._implicit = implicit_configs()
        return self._implicit

    def make_backend(self, name: str) -> BaseChannelLayer:
        """A new layer instance for alias ``name`` from its CONFIG."""
        config = self.configs[name].get("CONFIG", {})
        return self._make_backend(name, config)

    def make_test_backend(self, name: str) -> BaseChannelLayer:
        """A new layer instance for alias ``name`` from its TEST_CONFIG."""
        try:
            config = self.configs[name]["TEST_CONFIG"]
        except KeyError:
            raise InvalidChannelLayerError(f"No TEST_CONFIG specified for {name}") from None
        return self._make_backend(name, config)

    def _make_backend(self, name: str, config: dict[str, Any]) -> BaseChannelLayer:
        entry = self.configs[name]
        if not isinstance(entry, dict):
            raise InvalidChannelLayerError(f"CHANNEL_LAYERS[{name!r}] must be a dict")
        path = entry.get("BACKEND")
        if not path:
            raise InvalidChannelLayerError(f"No BACKEND specified for {name}")
        try:
            backend_class = import_string(path)
        except ImportError as exc:
            raise InvalidChannelLayerError(
                f"Cannot import BACKEND {path!r} specified for {name}: {exc}"
            ) from exc
        if not isinstance(config, dict):
            raise InvalidChannelLayerError(f"CONFIG of channel layer {name!r} must be a dict")
        try:
            layer = backend_class(**config)
        except TypeError as exc:
            raise InvalidChannelLayerError(
                f"Channel layer {name!r} ({path}) rejected its CONFIG: {exc}"
            ) from exc
        return layer  # type: ignore[no-any-return]

    def __getitem__(self, key: str) -> BaseChannelLayer:
        layer = self.backends.get(key)
        if layer is None:
            with self._lock:
                layer = self.backends.get(key)
                if layer is None:
                    layer = self.backends[key] = self.make_backend(key)
        return layer

    def __contains__(self, key: str) -> bool:
        return key in self.configs

    def set(self, key: str, layer: BaseChannelLayer | None) -> BaseChannelLayer | None:
        """Replace the layer for ``key`` (tests); returns the old one."""
        old = self.backends.get(key)
        if layer is None:
            self.backends.pop(key, None)
        else:
            self.backends[key] = layer
        return old


def implicit_configs() -> dict[str, dict[str, Any]]:
    """The implicit "default" alias: the IPC layer on the project's default space, if
    that space can be used here; else none (a project that worked without a layer
    keeps working without one), with a warning saying why."""
    try:
        from .ipc import space

        path = space.resolve(None, None)
        space.prepare(path)
    except (InvalidChannelLayerError, OSError) as exc:
        logger.warning(
            "CHANNEL_LAYERS is not set, and the IPC channel layer djwire would use "
            "instead cannot be: %s. Running without a channel layer.",
            exc,
        )
        return {}
    logger.info("CHANNEL_LAYERS is not set: using the IPC channel layer in %s", path)
    return {DEFAULT_CHANNEL_LAYER: {"BACKEND": IMPLICIT_BACKEND}}


channel_layers = ChannelLayerManager()


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> BaseChannelLayer | None:
    """The layer for ``alias``, or None when CHANNEL_LAYERS does not define it."""
    if alias not in channel_layers:
        return None
    return channel_layers[alias]
