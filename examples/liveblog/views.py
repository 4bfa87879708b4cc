from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from .models import Blog

#: Posts rendered with the page; older ones are not shown.
PAGE_POSTS = 200


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "liveblog/index.html", {"blogs": Blog.objects.all()})


def blog(request: HttpRequest, slug: str) -> HttpResponse:
    blog = get_object_or_404(Blog, slug=slug)
    # Taken before the query, so a post saved between the query and the socket's
    # connect is sent again on connect (?since=) rather than missed.
    rendered_at = timezone.now()
    posts = list(blog.posts.all()[:PAGE_POSTS])
    context = {"blog": blog, "posts": posts, "rendered_at": rendered_at.isoformat()}
    return render(request, "liveblog/blog.html", context)
