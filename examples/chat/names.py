"""Who is talking: the logged-in user's name, or a guest name kept in the session."""

from __future__ import annotations

import secrets

from django.contrib.sessions.backends.base import SessionBase

SESSION_KEY = "chat_guest_name"

_ADJECTIVES = [
    "Amber", "Brave", "Calm", "Clever", "Eager", "Gentle", "Happy", "Jolly",
    "Lively", "Lucky", "Merry", "Quick", "Quiet", "Sunny", "Swift", "Witty",
]  # fmt: skip
_ANIMALS = [
    "Badger", "Beaver", "Falcon", "Fox", "Heron", "Lynx", "Marten", "Otter",
    "Owl", "Panda", "Puffin", "Robin", "Seal", "Swan", "Tiger", "Wren",
]  # fmt: skip


def new_guest_name() -> str:
    number = secrets.randbelow(90) + 10
    return f"{secrets.choice(_ADJECTIVES)} {secrets.choice(_ANIMALS)} {number}"


def guest_name(session: SessionBase) -> str:
    """The session's guest name, made on first use (the page view saves it, so the
    socket, which cannot set cookies, finds it in the same session)."""
    name = session.get(SESSION_KEY)
    if not isinstance(name, str) or not name:
        name = new_guest_name()
        session[SESSION_KEY] = name
    return name
