"""Django over djwire: sync views in one thread-pool hop, async views via ASGIHandler."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

from djwire.django_http import DjangoHTTPApp, accelerate
from djwire.routing import ProtocolTypeRouter
from tests.server.support import exchange, parse_responses, serve


@pytest.fixture
def urls(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.server.django_urls"


async def get(port: int, target: str, extra: bytes = b"") -> Any:
    raw = f"GET {target} HTTP/1.1\r\nHost: testserver\r\nConnection: close\r\n".encode()
    (response,) = parse_responses(await exchange(port, raw + extra + b"\r\n"))
    return response


async def test_sync_view_runs_in_the_view_pool_in_one_hop(urls: None) -> None:
    app = accelerate(get_asgi_application())
    assert isinstance(app, DjangoHTTPApp)
    async with serve(app) as running:
        response = await get(running.port, "/where/")
    assert response.status == 200
    assert response.body.startswith(b"djwire-view")


async def test_async_view_still_runs_on_the_event_loop(urls: None) -> None:
    async with serve(accelerate(get_asgi_application())) as running:
        response = await get(running.port, "/where-async/")
    assert response.body == b"async:MainThread"


async def test_post_body_cookies_and_errors_behave_as_in_django(urls: None) -> None:
    async with serve(accelerate(get_asgi_application())) as running:
        body = b"a=hello&b=2"
        raw = (
            b"POST /upload/ HTTP/1.1\r\nHost: testserver\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        (response,) = parse_responses(await exchange(running.port, raw))
        assert response.body == b"POST 11 hello"
        assert any(
            n == b"set-cookie" and v.startswith(b"seen=yes") for n, v in response.raw_headers
        )
        assert (await get(running.port, "/missing/")).status == 404
        assert (await get(running.port, "/boom/")).status == 500


async def test_sync_streaming_response_is_streamed_whole(urls: None) -> None:
    async with serve(accelerate(get_asgi_application())) as running:
        response = await get(running.port, "/stream/")
    assert response.headers[b"transfer-encoding"] == b"chunked"
    assert response.body == "".join(f"line {i}\n" for i in range(1000)).encode()


def test_accelerate_finds_django_inside_routers_and_static_handlers() -> None:
    handler = get_asgi_application()
    router = ProtocolTypeRouter({"http": handler, "websocket": object()})
    faster = accelerate(router)
    assert faster is not router and isinstance(faster.application_mapping["http"], DjangoHTTPApp)
    assert router.application_mapping["http"] is handler  # the original is untouched
    static = accelerate(ASGIStaticFilesHandler(handler))
    assert isinstance(static, ASGIStaticFilesHandler)
    assert isinstance(static.application, DjangoHTTPApp)

    class Custom(ASGIHandler):
        pass

    custom = Custom()
    assert accelerate(custom) is custom


def test_async_only_middleware_keeps_djangos_handler(settings: Any) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.django_http.test_app.AsyncOnly"]
    handler = get_asgi_application()
    assert accelerate(handler) is handler


class AsyncOnly:
    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    async def __call__(self, request: Any) -> Any:
        return await self.get_response(request)
