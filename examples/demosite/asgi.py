"""One ASGI application for both apps.

- ``/ws/chat/<room>/``: the Channels 4 style chat (URLRouter + consumers).
- ``/liveblog/<slug>/stream/``: the classic function consumers of demosite.routing.
- Static files (CSS, djwire.js, the admin's) are served by the app itself, so the
  demo looks the same under ``runserver``, ``djwire serve --workers N`` or any ASGI
  server. A real deployment serves them from a web server or CDN instead.
- Every socket passes the Origin check (same hosts as ALLOWED_HOSTS) and gets the
  Django session and user (AuthMiddlewareStack).
- ``chat-bot``: the named channel of the chat's worker (``manage.py runworker
  chat-bot``, chat/bot.py), a separate process.

Classic routing on its own is enabled by ``CHANNEL_LAYERS["default"]["ROUTING"]``
when ASGI_APPLICATION is unset; to serve it next to URLRouter routes, mount its
WebSocket app (ClassicWebsocketApp) like any other ASGI app, as here.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demosite.settings")
# Set Django up before anything imports models (consumers, routing).
django_asgi_app = get_asgi_application()

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import re_path  # noqa: E402

from chat.bot import BOT_CHANNEL, ChatBotConsumer  # noqa: E402
from chat.routing import websocket_urlpatterns as chat_websockets  # noqa: E402
from demosite.routing import channel_routing  # noqa: E402
from djwire.auth import AuthMiddlewareStack  # noqa: E402
from djwire.classic.app import ClassicWebsocketApp  # noqa: E402
from djwire.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from djwire.security.websocket import AllowedHostsOriginValidator  # noqa: E402

websockets = URLRouter(
    [
        *chat_websockets,
        re_path(r"^liveblog/", ClassicWebsocketApp(channel_routing)),
    ]
)

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(websockets)),
        # manage.py runworker chat-bot
        "channel": ChannelNameRouter({BOT_CHANNEL: ChatBotConsumer.as_asgi()}),
    }
)
