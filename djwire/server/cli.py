"""``djwire serve APP`` (also ``python -m djwire serve APP``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from djwire import __version__
from djwire.server.config import Config, split_ips

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="djwire", description="djwire: Django, wired.")
    parser.add_argument("--version", action="version", version=f"djwire {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve an ASGI application over HTTP/1.1 and WebSocket",
        description="Serve an ASGI 3 application (e.g. proj.asgi:application).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = Config()
    add = serve.add_argument
    add("app", help='the app as "module:attribute" (attribute defaults to "application")')
    add("--host", default=defaults.host, help="bind address")
    add("--port", type=int, default=defaults.port, help="bind port")
    add("--uds", help="bind to this Unix domain socket instead")
    add("--fd", type=int, help="serve this inherited, listening socket file descriptor")
    add("--workers", type=int, default=defaults.workers, help="worker processes (supervised)")
    add("--backlog", type=int, default=defaults.backlog, help="listen() queue length")
    add(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default=defaults.loop,
        help="event loop (auto: uvloop when installed)",
    )
    add(
        "--lifespan",
        choices=("auto", "on", "off"),
        default=defaults.lifespan,
        help="ASGI lifespan (auto: tolerate apps without it)",
    )
    add("--root-path", default=defaults.root_path, help="ASGI root_path (mount prefix)")
    add(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=defaults.proxy_headers,
        help="believe X-Forwarded-*/Forwarded from --forwarded-allow-ips",
    )
    add(
        "--forwarded-allow-ips",
        default=os.environ.get("FORWARDED_ALLOW_IPS", ",".join(defaults.forwarded_allow_ips)),
        help='comma-separated trusted proxy addresses/networks, "*" for all, "unix" '
        "for Unix-socket peers (default from $FORWARDED_ALLOW_IPS)",
    )
    add(
        "--max-connections",
        type=int,
        default=defaults.max_connections,
        help="per process; beyond it new clients get 503",
    )
    add(
        "--timeout-keep-alive",
        type=float,
        default=defaults.keep_alive_timeout,
        help="seconds an HTTP connection may idle between requests",
    )
    add(
        "--timeout-request-head",
        type=float,
        default=defaults.request_head_timeout,
        help="seconds a client has to send a request head (slow-loris defence)",
    )
    add(
        "--timeout-graceful-shutdown",
        type=float,
        default=defaults.graceful_shutdown_timeout,
        help="seconds apps get to finish on SIGTERM/SIGINT",
    )
    add(
        "--max-header-size",
        type=int,
        default=defaults.max_header_size,
        help="bytes of request line and headers (431 beyond)",
    )
    add(
        "--max-request-body-size",
        type=int,
        default=defaults.max_request_body_size,
        help="bytes of request body (413 beyond); 0 for no limit",
    )
    add(
        "--ws-max-size",
        type=int,
        default=defaults.ws_max_message_size,
        help="bytes per incoming WebSocket message, decompressed (1009 beyond)",
    )
    add(
        "--ws-max-frame-size",
        type=int,
        default=defaults.ws_max_frame_size,
        help="bytes per incoming WebSocket frame (default: the message limit)",
    )
    add(
        "--ws-ping-interval",
        type=float,
        default=defaults.ws_ping_interval,
        help="seconds of client silence before a keepalive ping; 0 disables",
    )
    add(
        "--ws-ping-timeout",
        type=float,
        default=defaults.ws_ping_timeout,
        help="seconds a ping may go unanswered before closing 1011",
    )
    add(
        "--ws-per-message-deflate",
        action=argparse.BooleanOptionalAction,
        default=defaults.ws_per_message_deflate,
        help="negotiate permessage-deflate compression (RFC 7692)",
    )
    add(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=defaults.gc_freeze,
        help="after startup, freeze loaded objects out of the cyclic GC's reach",
    )
    add(
        "--gc-thresholds",
        default=",".join(map(str, defaults.gc_thresholds or ())),
        help='cyclic GC thresholds "A,B,C", or "default" for the interpreter\'s',
    )
    add("--no-access-log", action="store_true", help="do not log each request")
    add("--log-level", choices=LOG_LEVELS, default=defaults.log_level, help="server log level")
    add(
        "--django-fast-path",
        action=argparse.BooleanOptionalAction,
        default=defaults.django_fast_path,
        help="serve sync Django views in one thread-pool hop",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    ping_interval = args.ws_ping_interval
    options: dict[str, Any] = {
        "app": args.app,
        "host": args.host,
        "port": args.port,
        "uds": args.uds,
        "fd": args.fd,
        "workers": args.workers,
        "backlog": args.backlog,
        "loop": args.loop,
        "lifespan": args.lifespan,
        "root_path": args.root_path,
        "proxy_headers": args.proxy_headers,
        "forwarded_allow_ips": split_ips(args.forwarded_allow_ips),
        "max_connections": args.max_connections,
        "keep_alive_timeout": args.timeout_keep_alive,
        "request_head_timeout": args.timeout_request_head,
        "graceful_shutdown_timeout": args.timeout_graceful_shutdown,
        "max_header_size": args.max_header_size,
        "max_request_body_size": args.max_request_body_size or None,
        "ws_max_message_size": args.ws_max_size,
        "ws_max_frame_size": args.ws_max_frame_size,
        "ws_ping_interval": ping_interval if ping_interval and ping_interval > 0 else None,
        "ws_ping_timeout": args.ws_ping_timeout,
        "ws_per_message_deflate": args.ws_per_message_deflate,
        "access_log": not args.no_access_log,
        "log_level": args.log_level,
        "django_fast_path": args.django_fast_path,
        "gc_freeze": args.gc_freeze,
        "gc_thresholds": parse_thresholds(args.gc_thresholds),
    }
    return Config(**options)


def parse_thresholds(text: str) -> tuple[int, int, int] | None:
    if text.strip().lower() in ("", "default", "none"):
        return None
    parts = [int(part) for part in text.split(",")]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("--gc-thresholds takes three numbers: A,B,C")
    return parts[0], parts[1], parts[2]


def configure_logging(config: Config) -> None:
    """Log to stderr unless the app (e.g. Django's LOGGING) configured djwire already."""
    level = getattr(logging, config.log_level.upper())
    for name in ("djwire.server", "djwire.server.access"):
        target = logging.getLogger(name)
        if not target.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            target.addHandler(handler)
            target.propagate = False
        target.setLevel(level)
    if not config.access_log:
        logging.getLogger("djwire.server.access").setLevel(logging.WARNING)
    logging.getLogger("djwire.server.websocket.protocol").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    try:
        config.validate()
    except ValueError as exc:
        print(f"djwire: {exc}", file=sys.stderr)
        return 2
    configure_logging(config)
    from djwire.server.run import run_config

    return run_config(config)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
