"""Generic consumers: WebSocket (``websocket``), HTTP (``http``) and classic (``websockets``)."""
