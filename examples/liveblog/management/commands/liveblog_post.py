"""Add a post to a liveblog from the command line (another process than the server).

    python manage.py liveblog_post launch-day "Champagne is open" --title "Cheers"

Open pages show it at once: the demo's channel layer (IPC, or Redis with
DJWIRE_DEMO_REDIS) carries it from this process to the server's.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from liveblog.models import Blog, Post


class Command(BaseCommand):
    help = "Add a post to a liveblog (pages open on it show the post live)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the blog's slug, e.g. launch-day")
        parser.add_argument("body", help="the post's text")
        parser.add_argument("--title", default="", help="an optional title")
        parser.add_argument("--edit", type=int, metavar="ID", help="change post ID instead")

    def handle(self, *args: Any, **options: Any) -> None:
        blog = Blog.objects.filter(slug=options["slug"]).first()
        if blog is None:
            raise CommandError(f"No blog with slug {options['slug']!r}")
        if options["edit"] is not None:
            post = blog.posts.filter(pk=options["edit"]).first()
            if post is None:
                raise CommandError(f"No post {options['edit']} in {blog.slug}")
            post.body = options["body"]
            if options["title"]:
                post.title = options["title"]
            post.save()
            self.stdout.write(f"Updated post {post.pk} in {blog.slug}")
            return
        post = Post.objects.create(blog=blog, title=options["title"], body=options["body"])
        self.stdout.write(f"Created post {post.pk} in {blog.slug}")
