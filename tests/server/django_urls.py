"""Views for the Django fast-path tests."""

from __future__ import annotations

import threading

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


def where(request: HttpRequest) -> HttpResponse:
    return HttpResponse(threading.current_thread().name)


async def where_async(request: HttpRequest) -> HttpResponse:
    return HttpResponse("async:" + threading.current_thread().name)


@csrf_exempt
def upload(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(f"{request.method} {len(request.body)} {request.POST.get('a', '')}")
    response.set_cookie("seen", "yes")
    return response


def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(f"line {i}\n" for i in range(1000))


def boom(request: HttpRequest) -> HttpResponse:
    raise ValueError("view failed")


urlpatterns = [
    path("where/", where),
    path("where-async/", where_async),
    path("upload/", upload),
    path("stream/", stream),
    path("boom/", boom),
]
