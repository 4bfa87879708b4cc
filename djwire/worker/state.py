"""Consumer state that moves with a connection from one worker to the next.

In gateway mode a connection outlives the worker running its consumer. After each
handled event the worker takes a snapshot of the consumer instance's attributes
(those it set itself, such as ``self.room`` in ``connect()``; not ``scope``,
``channel_layer``, ``channel_name`` or ``base_send``, which the next worker sets
again; a class can name the attributes to carry in ``state_attributes``) and
sends it with the event's acknowledgement to the gateway; the next worker
restores it before handing the consumer further events.

Snapshots are pickled (so model instances, sets and the like travel too) and
signed with an HMAC keyed by ``SECRET_KEY``: the gateway and the layer only carry
them, and a worker unpickles nothing it cannot prove another worker of the same
project made. An attribute that cannot be pickled (an open file, a task, a lock)
is left out and logged once per class and attribute; one larger than
``max_state_size`` bytes in all leaves the whole snapshot out, also logged.
"""

from __future__ import annotations

import hmac
import logging
import pickle
from typing import Any

from django.utils.crypto import salted_hmac

logger = logging.getLogger("djwire.worker")

#: Attributes the consumer machinery sets on every instance; never carried.
FRAMEWORK_ATTRIBUTES = frozenset(
    {"scope", "channel_layer", "channel_name", "base_send", "channel_receive"}
)

_SALT = "djwire.worker.state"
_DIGEST_SIZE = 32
_warned: set[tuple[str, str]] = set()


def _sign(data: bytes) -> bytes:
    return salted_hmac(_SALT, data, algorithm="sha256").digest()


def carried_attributes(consumer: Any) -> dict[str, Any]:
    """The attributes to carry: those named by the class's ``state_attributes``, if it
    has that, else every instance attribute but the framework's."""
    names = getattr(consumer, "state_attributes", None)
    attributes = vars(consumer)
    if names is not None:
        return {name: attributes[name] for name in names if name in attributes}
    return {
        name: value
        for name, value in attributes.items()
        if name not in FRAMEWORK_ATTRIBUTES and not name.startswith("_djwire")
    }


def snapshot(consumer: Any, max_size: int, unless: bytes | None = None) -> bytes | None:
    """The signed state of ``consumer``; None when it has none, is too large, or is
    the very snapshot ``unless`` (unchanged: nothing to send, and nothing to sign)."""
    state = carried_attributes(consumer)
    if not state:
        return None
    try:
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        data = pickle.dumps(_picklable_part(consumer, state), protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > max_size:
        _warn_once(
            consumer,
            "(all)",
            f"state of {len(data)} bytes is larger than max_state_size ({max_size}); "
            "it is not carried to the next worker",
        )
        return None
    if unless is not None and unless[_DIGEST_SIZE:] == data:
        return None
    return _sign(data) + data


def _picklable_part(consumer: Any, state: dict[str, Any]) -> dict[str, Any]:
    kept = {}
    for name, value in state.items():
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            _warn_once(consumer, name, f"cannot be pickled ({exc}); it is not carried")
            continue
        kept[name] = value
    return kept


def restore(consumer: Any, signed: bytes) -> bool:
    """Set the attributes of a snapshot on ``consumer``; False if it does not verify."""
    signature, data = signed[:_DIGEST_SIZE], signed[_DIGEST_SIZE:]
    if not hmac.compare_digest(signature, _sign(data)):
        logger.error(
            "A consumer state failed its signature check (another SECRET_KEY?); the "
            "consumer %s starts without it",
            type(consumer).__qualname__,
        )
        return False
    try:
        state = pickle.loads(data)
    except Exception:
        logger.exception("A consumer state could not be read; starting without it")
        return False
    vars(consumer).update(state)
    return True


def _warn_once(consumer: Any, attribute: str, problem: str) -> None:
    key = (type(consumer).__qualname__, attribute)
    if key in _warned:
        return
    _warned.add(key)
    logger.warning(
        "Gateway mode: %s.%s %s. Rebuild it in resumed() (see docs/deployment.md).",
        key[0],
        attribute,
        problem,
    )
