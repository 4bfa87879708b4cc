from django.urls import path

from djwire.routing import ProtocolTypeRouter, URLRouter

from . import consumers_djwire as consumers


def make_application(django_http):
    return ProtocolTypeRouter(
        {
            "http": django_http,
            "websocket": URLRouter(
                [
                    path("ws/echo/", consumers.EchoConsumer.as_asgi()),
                    path("ws/member/", consumers.MemberConsumer.as_asgi()),
                    path("ws/trigger/handler/", consumers.TriggerConsumer.as_asgi()),
                    path("ws/trigger/direct/", consumers.DirectTriggerConsumer.as_asgi()),
                ]
            ),
        }
    )
