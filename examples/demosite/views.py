from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from chat.models import Room
from liveblog.models import Blog


def home(request: HttpRequest) -> HttpResponse:
    context = {"blogs": Blog.objects.all()[:10], "rooms": Room.objects.all()[:10]}
    return render(request, "demosite/home.html", context)
