"""The liveblog's classic routing, as in the original Channels talk."""

from djwire.routing import route
from liveblog.consumers import connect_blog, disconnect_blog

BLOG_STREAM = r"^/liveblog/(?P<slug>[-\w]+)/stream/$"

channel_routing = [
    route("websocket.connect", connect_blog, path=BLOG_STREAM),
    route("websocket.disconnect", disconnect_blog, path=BLOG_STREAM),
]
