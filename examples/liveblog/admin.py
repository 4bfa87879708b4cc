from django.contrib import admin

from .models import Blog, Post


class PostInline(admin.StackedInline):
    model = Post
    extra = 0
    fields = ["title", "body"]


@admin.register(Blog)
class BlogAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "created"]
    prepopulated_fields = {"slug": ["title"]}
    search_fields = ["title"]
    inlines = [PostInline]


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    """The blog page's "Add a post" link passes ``?blog=<id>``, which the admin takes
    as the initial value of the blog field."""

    list_display = ["__str__", "blog", "created", "updated"]
    list_filter = ["blog"]
    search_fields = ["title", "body"]
    fields = ["blog", "title", "body", "created", "updated"]
    readonly_fields = ["created", "updated"]
    date_hierarchy = "created"
