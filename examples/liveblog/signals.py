"""Deleted posts leave open pages too (the admin's bulk delete skips Model.delete())."""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Post, blog_group


@receiver(post_delete, sender=Post)
def broadcast_deleted_post(sender: type[Post], instance: Post, **kwargs: Any) -> None:
    slug, post_id = instance.blog.slug, instance.pk
    message = {"text": json.dumps({"type": "deleted", "id": post_id})}
    transaction.on_commit(lambda: blog_group(slug).send(message))
