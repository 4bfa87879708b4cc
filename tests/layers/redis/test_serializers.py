"""Serialization formats and symmetric encryption with key rotation."""

from __future__ import annotations

import asyncio
import sys

import pytest

from djwire.exceptions import InvalidChannelLayerError
from djwire.layers.redis import RedisChannelLayer, envelope
from djwire.layers.redis.envelope import Kind
from djwire.layers.redis.serializers import make_serializer

from .conftest import MakeLayer

MESSAGE = {"type": "chat.message", "text": "héllo", "n": [1, 2.5, None, True], "b": b"\x00\xff"}


@pytest.mark.parametrize("keys", [None, ["one-key"], ["new-key", "old-key"]])
def test_msgpack_round_trip_through_an_envelope(keys: list[str] | None) -> None:
    serializer = make_serializer("msgpack", keys)
    item = envelope.build(123, Kind.MESSAGE, "target", serializer.dumps(MESSAGE), "w", 7, 2)
    parsed = envelope.parse(item)
    assert (parsed.deadline_ms, parsed.kind, parsed.target) == (123, Kind.MESSAGE, "target")
    assert (parsed.writer, parsed.seq, parsed.accounted) == ("w", 7, 2)
    assert serializer.loads(parsed.payload) == MESSAGE


def test_json_format_round_trips_and_refuses_bytes_clearly() -> None:
    serializer = make_serializer("json")
    message = {"type": "x", "text": "héllo", "n": [1, None]}
    parsed = envelope.parse(envelope.build(1, Kind.MESSAGE, "t", serializer.dumps(message)))
    assert serializer.loads(parsed.payload) == message
    with pytest.raises(TypeError, match="JSON"):
        serializer.dumps({"type": "x", "b": b"\x00"})


def test_malformed_items_are_a_value_error() -> None:
    for junk in [b"", b"not a number", b"0000000000001\xc1", b"0000000000001\x93\x01\x02\x03"]:
        with pytest.raises(ValueError):
            envelope.parse(junk)


def test_encryption_without_cryptography_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.fernet", None)  # as if not installed
    with pytest.raises(InvalidChannelLayerError, match="pip install cryptography"):
        make_serializer("msgpack", ["key"])


def test_encrypted_items_do_not_contain_the_plaintext() -> None:
    payload = make_serializer("msgpack", ["secret"]).dumps({"type": "x", "text": "top-secret"})
    assert b"top-secret" not in payload


async def test_key_rotation_between_processes(make_layer: MakeLayer) -> None:
    old_only = make_layer(symmetric_encryption_keys=["old"])
    rotated = make_layer(symmetric_encryption_keys=["new", "old"])  # encrypts with "new"
    to_rotated = await rotated.new_channel()
    to_old = await old_only.new_channel()
    await old_only.send(to_rotated, MESSAGE)  # old key still decrypts
    assert await asyncio.wait_for(rotated.receive(to_rotated), 5) == MESSAGE
    await rotated.send(to_old, {"type": "unreadable"})  # "new" is unknown there
    await rotated.send(to_old, {"type": "unreadable"})
    await asyncio.sleep(0.2)
    await old_only.send(to_old, {"type": "readable"})
    assert (await asyncio.wait_for(old_only.receive(to_old), 5))["type"] == "readable"
    assert old_only.stats.extra["malformed"] == 2  # skipped and counted, not a crash


async def test_json_layers_talk_to_each_other(make_layer: MakeLayer) -> None:
    a, b = make_layer(serializer_format="json"), make_layer(serializer_format="json")
    channel = await b.new_channel()
    await a.send(channel, {"type": "j", "v": [1, "two"]})
    assert await asyncio.wait_for(b.receive(channel), 5) == {"type": "j", "v": [1, "two"]}


def test_layer_refuses_unserializable_messages_with_type_error() -> None:
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"])
    with pytest.raises(TypeError):
        layer.serializer.dumps({"type": "x", "obj": object()})
