from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from . import consumers_channels as consumers


def make_application(django_http):
    return ProtocolTypeRouter(
        {
            "http": django_http,
            "websocket": URLRouter(
                [
                    path("ws/echo/", consumers.EchoConsumer.as_asgi()),
                    path("ws/member/", consumers.MemberConsumer.as_asgi()),
                    path("ws/trigger/handler/", consumers.TriggerConsumer.as_asgi()),
                ]
            ),
        }
    )
