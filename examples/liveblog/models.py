"""A blog is a page; its posts are pushed to every open page when saved.

``Post.save()`` sends to the blog's group the classic way
(``Group("liveblog-" + slug).send({"text": ...})``): the group message goes
straight to every member socket, whichever process saved the post, as long as the
processes share a channel layer (the Redis layer; the in-memory one only reaches
sockets of the same process).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import models, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from djwire import Group

logger = logging.getLogger(__name__)


def blog_group(slug: str) -> Group:
    """The group of every socket watching the blog ``slug``."""
    return Group("liveblog-" + slug)


class Blog(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=50, unique=True)
    description = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("liveblog:blog", kwargs={"slug": self.slug})

    def stream_path(self) -> str:
        return f"/liveblog/{self.slug}/stream/"


class Post(models.Model):
    blog = models.ForeignKey(Blog, related_name="posts", on_delete=models.CASCADE)
    title = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    created = models.DateTimeField(default=timezone.now, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return self.title or self.body[:60]

    @property
    def was_edited(self) -> bool:
        # created is set when the object is made and updated when it is saved: the
        # first save leaves them a moment apart, an edit much further.
        return (self.updated - self.created).total_seconds() > 2

    def save(self, *args: Any, **kwargs: Any) -> None:
        is_new = self._state.adding
        super().save(*args, **kwargs)
        # After the commit, so no page ever shows a post that was rolled back (the
        # admin saves inside a transaction); at once when there is no transaction.
        transaction.on_commit(lambda: self.broadcast("created" if is_new else "updated"))

    def broadcast(self, event: str) -> None:
        try:
            blog_group(self.blog.slug).send({"text": json.dumps(self.as_message(event))})
        except Exception:
            # The post is saved; failing the save (a 500 in the admin) because the
            # layer is down would help nobody. Pages catch up when they reconnect.
            logger.exception("Could not push post %s to open pages", self.pk)

    def as_message(self, event: str) -> dict[str, Any]:
        """What a page receives: the post rendered by the same template as the page."""
        return {
            "type": "post",
            "event": event,
            "id": self.pk,
            "created": self.created.isoformat(),
            "updated": self.updated.isoformat(),
            "html": render_to_string("liveblog/_post.html", {"post": self}),
        }
