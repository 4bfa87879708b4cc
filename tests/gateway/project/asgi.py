from django.core.asgi import get_asgi_application

django_app = get_asgi_application()

from django.urls import path  # noqa: E402

from djwire.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402

from .consumers import Chat, Tasks  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": URLRouter([path("chat/<room>/", Chat.as_asgi())]),
        "channel": ChannelNameRouter({"tasks": Tasks.as_asgi()}),
    }
)
