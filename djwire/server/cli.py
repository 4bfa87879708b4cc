"""``djwire serve APP`` (also ``python -m djwire serve APP``)."""

from __future__ import annotations

import argparse
import os
import sys
import typing
from collections.abc import Callable, Collection, Sequence
from typing import Any

from djwire import __version__
from djwire.extensions import implicit_ipc_layer
from djwire.server.config import Config, LogLevel
from djwire.server.logs import configure_logging
from djwire.server.options import convert, field_names, parse_assignment

__all__ = ["build_parser", "configure_logging", "main", "options_from_args"]

LOG_LEVELS = typing.get_args(LogLevel)


def shown(value: object) -> str:
    """A default as the command line would spell it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def typed(name: str, *, zero_is_none: bool = False) -> Callable[[str], Any]:
    """An argparse ``type`` that converts text as Config field ``name`` takes it."""

    def parse(text: str) -> Any:
        if zero_is_none and text.strip() in ("0", "0.0"):
            text = "none"
        try:
            return convert(name, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def assignment(text: str, *, valid: Collection[str] | None = None) -> tuple[str, Any]:
    """An argparse ``type`` for ``--set NAME=VALUE`` (``valid``: the names allowed)."""
    try:
        return parse_assignment(text, valid=valid)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="djwire", description="djwire: Django, wired.")
    parser.add_argument("--version", action="version", version=f"djwire {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve an ASGI application over HTTP/1.1 and WebSocket",
        description="Serve an ASGI 3 application (e.g. proj.asgi:application).",
        epilog=(
            "--set NAME=VALUE sets any field of djwire.server.Config: "
            + ", ".join(field_names())
            + ". Values: numbers, true/false, none, comma-separated lists. For a Django "
            "project, the DJWIRE_SERVER setting gives defaults; the command line wins."
        ),
    )
    defaults = Config()

    def add(flag: str, name: str, text: str, **options: Any) -> None:
        """An option for Config field ``name``, absent from the result unless given."""
        if "action" not in options:
            options.setdefault("type", typed(name))
            if "choices" not in options:
                options.setdefault("metavar", flag.lstrip("-").replace("-", "_").upper())
        default = options.pop("shown", shown(getattr(defaults, name)))
        help_text = f"{text} (default: {default})"
        serve.add_argument(flag, dest=name, default=argparse.SUPPRESS, help=help_text, **options)

    serve.add_argument(
        "app",
        nargs="?",
        help='the app as "module:attribute" (attribute defaults to "application")',
    )
    serve.add_argument(
        "--gateway",
        action="store_true",
        help="serve as a gateway: hold the connections and forward them over the channel "
        "layer to workers (manage.py runworker --connections); needs DJANGO_SETTINGS_MODULE",
    )
    add("--host", "host", "bind address")
    add("--port", "port", "bind port")
    add("--uds", "uds", "bind to this Unix domain socket instead")
    add("--fd", "fd", "serve this inherited, listening socket file descriptor")
    add("--workers", "workers", "worker processes (supervised)")
    add("--backlog", "backlog", "listen() queue length")
    add(
        "--loop",
        "loop",
        "event loop (auto: uvloop when installed)",
        choices=("auto", "uvloop", "asyncio"),
    )
    add(
        "--lifespan",
        "lifespan",
        "ASGI lifespan (auto: tolerate apps without it)",
        choices=("auto", "on", "off"),
    )
    add("--root-path", "root_path", "ASGI root_path (mount prefix)", shown='""')
    add(
        "--proxy-headers",
        "proxy_headers",
        "believe X-Forwarded-*/Forwarded from --forwarded-allow-ips",
        action=argparse.BooleanOptionalAction,
    )
    add(
        "--forwarded-allow-ips",
        "forwarded_allow_ips",
        'comma-separated trusted proxy IP addresses/networks, "*" for all, "unix" for '
        "Unix-socket peers; host names are refused (also $FORWARDED_ALLOW_IPS)",
    )
    add(
        "--max-connections",
        "max_connections",
        "per process; beyond it new clients get 503",
    )
    add(
        "--timeout-keep-alive",
        "keep_alive_timeout",
        "seconds an HTTP connection may idle between requests",
    )
    add(
        "--timeout-request-head",
        "request_head_timeout",
        "seconds a client has to send a request head (slow-loris defence)",
    )
    add(
        "--timeout-graceful-shutdown",
        "graceful_shutdown_timeout",
        "seconds apps get to finish on SIGTERM/SIGINT",
    )
    add(
        "--max-header-size",
        "max_header_size",
        "bytes of request line and headers (431 beyond)",
    )
    add(
        "--max-request-body-size",
        "max_request_body_size",
        "bytes of request body (413 beyond); 0 for no limit",
        type=typed("max_request_body_size", zero_is_none=True),
    )
    add(
        "--ws-max-size",
        "ws_max_message_size",
        "bytes per incoming WebSocket message, decompressed (1009 beyond)",
    )
    add(
        "--ws-max-frame-size",
        "ws_max_frame_size",
        "bytes per incoming WebSocket frame",
        shown="the message limit",
    )
    add(
        "--ws-ping-interval",
        "ws_ping_interval",
        "seconds of client silence before a keepalive ping; 0 disables",
        type=typed("ws_ping_interval", zero_is_none=True),
    )
    add(
        "--ws-ping-timeout",
        "ws_ping_timeout",
        "seconds a ping may go unanswered before closing 1011",
    )
    add(
        "--ws-per-message-deflate",
        "ws_per_message_deflate",
        "negotiate permessage-deflate compression (RFC 7692)",
        action=argparse.BooleanOptionalAction,
    )
    add(
        "--gc-freeze",
        "gc_freeze",
        "after startup, freeze loaded objects out of the cyclic GC's reach",
        action=argparse.BooleanOptionalAction,
    )
    add(
        "--gc-thresholds",
        "gc_thresholds",
        'cyclic GC thresholds "A,B,C", or "default" for the interpreter\'s',
        type=parse_thresholds,
    )
    add(
        "--no-access-log",
        "access_log",
        "do not log each request",
        action="store_false",
        shown="access log on",
    )
    add("--log-level", "log_level", "server log level", choices=LOG_LEVELS)
    add(
        "--django-fast-path",
        "django_fast_path",
        "serve sync Django views in one thread-pool hop",
        action=argparse.BooleanOptionalAction,
    )
    serve.add_argument(
        "--set",
        dest="assignments",
        metavar="NAME=VALUE",
        type=assignment,
        action="append",
        default=[],
        help="set any server setting by its Config name, e.g. --set send_timeout=10 "
        "(repeatable; names listed below)",
    )
    return parser


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The Config fields the command line sets: only those it was given.

    Raises ValueError when one is given twice (as an option and with ``--set``).
    """
    given = {k: v for k, v in vars(args).items() if k not in ("command", "assignments", "gateway")}
    by_option = set(given)
    for name, value in getattr(args, "assignments", []):  # the last --set of a name wins
        if name in by_option:
            raise ValueError(f"{name} is given twice: by its option and by --set {name}=...")
        given[name] = value
    env_ips = os.environ.get("FORWARDED_ALLOW_IPS")
    if env_ips and "forwarded_allow_ips" not in given:
        given["forwarded_allow_ips"] = convert("forwarded_allow_ips", env_ips)
    return given


def config_from_args(args: argparse.Namespace) -> Config:
    return Config(**options_from_args(args))


def parse_thresholds(text: str) -> tuple[int, int, int] | None:
    if text.strip().lower() in ("", "default", "none"):
        return None
    try:
        value: tuple[int, int, int] = convert("gc_thresholds", text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("--gc-thresholds takes three numbers: A,B,C") from exc
    return value


#: What ``--gateway`` serves: an import string, so the server imports no app code.
GATEWAY_APP = "djwire.gateway:application()"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.gateway:
        if args.app is not None:
            parser.error("give either an app or --gateway, not both")
        args.app = GATEWAY_APP
    elif args.app is None:
        parser.error("the app is required (or --gateway)")
    try:
        options = options_from_args(args)
        config = Config(**options)
        config.validate()
    except ValueError as exc:
        print(f"djwire: {exc}", file=sys.stderr)
        return 2
    configure_logging(config)
    from djwire.server.run import run_config

    # A Django project without CHANNEL_LAYERS gets the IPC layer in every worker
    # process (they inherit the environment), so groups span them (djwire.extensions).
    with implicit_ipc_layer():
        return run_config(config, explicit=frozenset(options))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
