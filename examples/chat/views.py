from django.conf import settings
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify

from .models import Room
from .names import guest_name

DEFAULT_ROOM = "lobby"


def index(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        name = slugify(request.POST.get("room", ""))[:50] or DEFAULT_ROOM
        return redirect("chat:room", name=name)
    rooms = Room.objects.annotate(count=Count("messages"), last=Max("messages__sent"))
    return render(request, "chat/index.html", {"rooms": rooms.order_by("-last", "name")[:50]})


def room(request: HttpRequest, name: str) -> HttpResponse:
    if request.user.is_authenticated:
        you = request.user.get_username()
    else:
        # Saved in the session now, so the socket (same session cookie) uses it too.
        you = guest_name(request.session)
    return render(
        request,
        "chat/room.html",
        {"room_name": name, "you": you, "max_length": settings.DEMO_CHAT_MAX_LENGTH},
    )
