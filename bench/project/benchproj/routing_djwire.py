from django.urls import path

from djwire.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter

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
                    path("ws/trigger/loop-handler/", consumers.LoopTriggerConsumer.as_asgi()),
                    path("ws/trigger/loop-direct/", consumers.DirectLoopTriggerConsumer.as_asgi()),
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
