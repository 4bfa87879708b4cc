"""How messages are turned into bytes for Redis, and optionally encrypted.

A serializer produces one msgpack *object* (see :mod:`.envelope`): with plain
msgpack it is the message map itself, so the receiver decodes envelope and message
in one pass; with JSON or encryption it is a byte string holding the encoded form.

``symmetric_encryption_keys`` follow channels_redis: any strings; each is hashed
with SHA-256 into a Fernet key. The first key encrypts; every key decrypts, so keys
are rotated by putting the new key first and dropping the old one later. Fernet
needs the optional ``cryptography`` package (``pip install 'djwire[redis-crypto]'``);
without it, configuring keys fails with a clear :class:`InvalidChannelLayerError`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from typing import Any, Protocol

from djwire.exceptions import InvalidChannelLayerError

from ..base import Message
from .envelope import pack_payload, unpack_payload


class Serializer(Protocol):
    def dumps(self, message: Message) -> bytes:
        """``message`` as one packed msgpack object."""
        ...

    def loads(self, payload: Any) -> Message:
        """The message from the unpacked object :meth:`dumps` produced."""
        ...


class MsgpackSerializer:
    def dumps(self, message: Message) -> bytes:
        try:
            return pack_payload(message)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(f"Message cannot be serialized with msgpack: {exc}") from exc

    def loads(self, payload: Any) -> Message:
        if not isinstance(payload, dict):
            raise ValueError("Expected a msgpack map as the message")
        return payload


class JsonSerializer:
    """JSON text inside the envelope; bytes values are not allowed by JSON."""

    def dumps(self, message: Message) -> bytes:
        try:
            text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"Message cannot be serialized as JSON: {exc}") from exc
        return pack_payload(text.encode())

    def loads(self, payload: Any) -> Message:
        message = json.loads(payload)
        if not isinstance(message, dict):
            raise ValueError("Expected a JSON object as the message")
        return message


class EncryptingSerializer:
    """Wraps another serializer's bytes in Fernet tokens (AES-128-CBC + HMAC)."""

    def __init__(self, inner: Serializer, keys: Iterable[str | bytes]) -> None:
        try:
            from cryptography.fernet import Fernet, MultiFernet
        except ImportError as exc:
            raise InvalidChannelLayerError(
                "symmetric_encryption_keys needs the 'cryptography' package: "
                "pip install 'djwire[redis-crypto]' (or pip install cryptography)"
            ) from exc
        keys = list(keys)
        if not keys or any(not isinstance(key, str | bytes) or not key for key in keys):
            raise InvalidChannelLayerError(
                "symmetric_encryption_keys must be a non-empty list of non-empty strings"
            )
        self.inner = inner
        self.fernet = MultiFernet([Fernet(derive_fernet_key(key)) for key in keys])

    def dumps(self, message: Message) -> bytes:
        return pack_payload(self.fernet.encrypt(self.inner.dumps(message)))

    def loads(self, payload: Any) -> Message:
        # Any key in the list decrypts: rotation keeps old messages readable.
        return self.inner.loads(unpack_payload(self.fernet.decrypt(payload)))


def derive_fernet_key(key: str | bytes) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


FORMATS: dict[str, type[MsgpackSerializer] | type[JsonSerializer]] = {
    "msgpack": MsgpackSerializer,
    "json": JsonSerializer,
}


def make_serializer(
    serializer_format: str = "msgpack",
    symmetric_encryption_keys: Iterable[str | bytes] | None = None,
) -> Serializer:
    try:
        inner: Serializer = FORMATS[serializer_format]()
    except KeyError:
        raise InvalidChannelLayerError(
            f"serializer_format must be one of {sorted(FORMATS)}, not {serializer_format!r}"
        ) from None
    if symmetric_encryption_keys:
        return EncryptingSerializer(inner, symmetric_encryption_keys)
    return inner
