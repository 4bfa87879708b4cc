"""Generic consumers: ``websocket`` (WebSocket and JSON consumers) and ``http``
(``AsyncHttpConsumer``), as in Channels 4. ``websockets`` (plural) is Channels 1's
path to the classic class-based consumers."""
