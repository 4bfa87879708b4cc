"""Liveblog sockets, written as the classic function consumers of the original talk.

Routed in demosite/routing.py. Each runs in a worker thread with the connection's
``message``; ``message.reply_channel`` leads back to the browser.
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import parse_qs

from djwire.classic.message import Message

from .models import Blog, blog_group

#: Posts sent to a reconnecting page at most (the page reloads when it missed more).
CATCH_UP_LIMIT = 100


def connect_blog(message: Message, slug: str) -> None:
    blog = Blog.objects.filter(slug=slug).first()
    if blog is None:
        message.reply_channel.send({"accept": False})
        return
    # Join before accepting: once the page sees the socket open, no post is missed.
    blog_group(slug).add(message.reply_channel)
    message.reply_channel.send({"accept": True})
    send_missed_posts(message, blog)


def disconnect_blog(message: Message, slug: str) -> None:
    # Groups joined with Group.add(reply_channel) are also left automatically.
    blog_group(slug).discard(message.reply_channel)


def send_missed_posts(message: Message, blog: Blog) -> None:
    """A page that reconnects asks for what changed since its last update (``?since=``),
    so a post saved while it was away is not lost."""
    since = _since(message.get("query_string", b""))
    if since is None:
        return
    changed = list(blog.posts.filter(updated__gte=since).order_by("updated")[: CATCH_UP_LIMIT + 1])
    if len(changed) > CATCH_UP_LIMIT:
        message.reply_channel.send({"text": json.dumps({"type": "reload"})})
        return
    for post in changed:
        reply = post.as_message("created" if post.created >= since else "updated")
        message.reply_channel.send({"text": json.dumps(reply)})


def _since(query_string: bytes | str) -> datetime | None:
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    values = parse_qs(query_string).get("since")
    if not values:
        return None
    try:
        since = datetime.fromisoformat(values[0])
    except ValueError:
        return None
    return since if since.tzinfo is not None else None
