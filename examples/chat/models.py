from __future__ import annotations

from typing import Any

from django.db import models
from django.urls import reverse
from django.utils import timezone

#: Room names as they appear in URLs (/chat/<name>/, /ws/chat/<name>/).
ROOM_NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,49}"


class Room(models.Model):
    name = models.SlugField(max_length=50, unique=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("chat:room", kwargs={"name": self.name})

    @property
    def group_name(self) -> str:
        return "chat-" + self.name


class ChatMessage(models.Model):
    room = models.ForeignKey(Room, related_name="messages", on_delete=models.CASCADE)
    author = models.CharField(max_length=150)
    #: True when the author was a logged-in user, False for a guest name.
    authenticated = models.BooleanField(default=False)
    text = models.TextField()
    sent = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["sent", "id"]

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:60]}"

    def as_json(self) -> dict[str, Any]:
        # Raw text: the page inserts it as text (textContent), so markup shows as
        # typed and is never interpreted.
        return {
            "id": self.pk,
            "author": self.author,
            "authenticated": self.authenticated,
            "text": self.text,
            "sent": self.sent.isoformat(),
        }
