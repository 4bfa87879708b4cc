"""Security helpers for connections: see :mod:`djwire.security.websocket`."""
