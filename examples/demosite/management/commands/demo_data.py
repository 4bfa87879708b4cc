"""Fill the demo database: blogs with posts, a chat room, and the demo user.

Idempotent: running it again adds nothing that is already there and never resets
a password that was changed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from chat.models import ChatMessage, Room
from liveblog.models import Blog, Post

DEMO_USER = ("demo", "demo")

BLOGS = [
    {
        "slug": "launch-day",
        "title": "Launch day",
        "description": "Following the release as it happens.",
        "posts": [
            ("Doors open", "The team is in, coffee is on, and the release branch is green."),
            ("", "Packages uploaded. Waiting for the mirrors to catch up."),
            (
                "It's out!",
                "djwire is live. Open this page in a second window and add a post "
                "in the admin: both windows show it without a reload.",
            ),
        ],
    },
    {
        "slug": "bake-off-final",
        "title": "Bake-off final",
        "description": "Three bakers, one tent, four hours.",
        "posts": [
            ("The brief", "Showstopper: a three-tier celebration cake. Four hours on the clock."),
            ("", "Sponges are in the ovens. Someone forgot the baking powder."),
        ],
    },
]


class Command(BaseCommand):
    help = "Create the demo blogs, posts, chat room and the demo/demo staff user (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            user_created = self.ensure_user()
            blogs, posts = self.ensure_blogs()
            rooms = self.ensure_lobby()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {blogs} new blog(s), {posts} new post(s), {rooms} new room(s)"
                + ("; user demo/demo created" if user_created else "")
            )
        )

    def ensure_user(self) -> bool:
        username, password = DEMO_USER
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(password)
            user.save()
        return created

    def ensure_blogs(self) -> tuple[int, int]:
        new_blogs = new_posts = 0
        now = timezone.now()
        for spec in BLOGS:
            blog, created = Blog.objects.get_or_create(
                slug=spec["slug"],
                defaults={"title": spec["title"], "description": spec["description"]},
            )
            new_blogs += created
            if blog.posts.exists():
                continue
            entries = spec["posts"]
            for age, (title, body) in zip(range(len(entries), 0, -1), entries, strict=True):
                created_at = now - timedelta(minutes=7 * age)
                post = Post.objects.create(blog=blog, title=title, body=body, created=created_at)
                # Not "edited": back-date the save time too (auto_now set it to now).
                Post.objects.filter(pk=post.pk).update(updated=created_at)
                new_posts += 1
        return new_blogs, new_posts

    def ensure_lobby(self) -> int:
        room, created = Room.objects.get_or_create(name="lobby")
        if not room.messages.exists():
            ChatMessage.objects.create(
                room=room,
                author="djwire",
                authenticated=True,
                text="Welcome to #lobby! Open this page in two windows and say hello.",
            )
        return int(created)
