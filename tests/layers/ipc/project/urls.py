from __future__ import annotations

from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse
from django.urls import path

from djwire.layers import get_channel_layer


def enqueue(request: HttpRequest) -> HttpResponse:
    """A plain sync view handing work to the worker."""
    layer = get_channel_layer()
    if layer is None:
        return HttpResponse("no channel layer", status=503)
    async_to_sync(layer.send)("tasks", {"type": "task.run", "text": request.GET["text"]})
    return HttpResponse("queued")


def ready(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("enqueue/", enqueue), path("", ready)]
