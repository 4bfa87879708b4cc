from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter
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
                    path("ws/trigger/loop-handler/", consumers.LoopTriggerConsumer.as_asgi()),
                ]
            ),
            # bench/workers.py: named channels for runworker
            "channel": ChannelNameRouter(
                {
                    "bench.async": consumers.AsyncTaskConsumer.as_asgi(),
                    "bench.sync": consumers.SyncTaskConsumer.as_asgi(),
                    "bench.reliable": consumers.AsyncTaskConsumer.as_asgi(),
                }
            ),
        }
    )
