"""Every Config field by name: ``--set NAME=VALUE``, DJWIRE_SERVER, and their order."""

from __future__ import annotations

import dataclasses
import sys
import typing
from typing import Any, Literal

import pytest

from djwire.server.cli import build_parser, main, options_from_args, shown
from djwire.server.config import Config
from djwire.server.options import (
    convert,
    field_names,
    project_settings,
    with_project_settings,
)


def given(*argv: str) -> dict[str, Any]:
    return options_from_args(build_parser().parse_args(["serve", "proj.asgi:app", *argv]))


def another_value(name: str) -> Any:
    """A valid value for field ``name`` that is not its default."""
    default = getattr(Config(), name)
    hint = typing.get_type_hints(Config)[name]
    if typing.get_origin(hint) is Literal:
        return next(choice for choice in typing.get_args(hint) if choice != default)
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        return default + 0.5
    if default is None:
        inner = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        return {str: "/run/x.sock", int: 3, float: 3.0}[inner]
    if isinstance(default, tuple):
        if all(isinstance(item, int) for item in default):
            return tuple(item + 1 for item in default)
        return ("10.0.0.0/8",)
    assert isinstance(default, str), name
    return "/mounted"


@pytest.mark.parametrize("name", field_names())
def test_set_reaches_every_config_field(name: str) -> None:
    value = another_value(name)
    options = given("--set", f"{name}={shown(value)}")
    assert options == {"app": "proj.asgi:app", name: value}
    assert getattr(Config(**options), name) == value


def test_set_parses_none_lists_and_booleans() -> None:
    options = given(
        "--set", "ws_ping_interval=none", "--set", "forwarded_allow_ips=10.0.0.1, 10.0.0.2",
        "--set", "server_header=false", "--set", "send_timeout=2.5", "--set", "ws_max_queue=8",
    )  # fmt: skip
    config = Config(**options)
    assert config.ws_ping_interval is None
    assert config.forwarded_allow_ips == ("10.0.0.1", "10.0.0.2")
    assert config.server_header is False
    assert config.send_timeout == 2.5 and config.ws_max_queue == 8


def test_only_the_options_given_count_as_chosen() -> None:
    assert given() == {"app": "proj.asgi:app"}
    assert given("--no-access-log", "--ws-ping-interval", "0") == {
        "app": "proj.asgi:app",
        "access_log": False,
        "ws_ping_interval": None,
    }


def test_set_rejects_unknown_names_and_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["serve", "a:b", "--set", "send_timout=3"])
    assert info.value.code == 2
    error = capsys.readouterr().err
    assert "unknown server setting 'send_timout'" in error and "send_timeout" in error
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "a:b", "--set", "ws_max_queue=many"])
    assert "ws_max_queue" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "a:b", "--set", "app=other:app"])
    assert "unknown server setting 'app'" in capsys.readouterr().err


def test_an_option_and_set_for_the_same_field_is_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "a:b", "--port", "1", "--set", "port=2"]) == 2
    assert "port is given twice" in capsys.readouterr().err
    assert given("--set", "port=1", "--set", "port=2")["port"] == 2  # the last --set wins


def test_convert_checks_python_values_too() -> None:
    assert convert("send_timeout", 5) == 5.0
    assert convert("gc_thresholds", [1, 2, 3]) == (1, 2, 3)
    assert convert("ws_max_frame_size", None) is None
    with pytest.raises(ValueError, match="max_header_count"):
        convert("max_header_count", "12.5")
    with pytest.raises(ValueError, match="send_timeout cannot be None"):
        convert("send_timeout", None)
    with pytest.raises(ValueError, match="ws_per_message_deflate: expected true or false"):
        convert("ws_per_message_deflate", 1)
    with pytest.raises(ValueError, match="gc_thresholds: expected 3 values"):
        convert("gc_thresholds", "1,2")
    with pytest.raises(ValueError, match="loop: expected one of auto, uvloop, asyncio"):
        convert("loop", "trio")


def test_djwire_server_setting_is_read_and_checked(settings: Any) -> None:
    settings.DJWIRE_SERVER = {
        "send_timeout": 5,
        "forwarded_allow_ips": ["10.0.0.1"],
        "ws_ping_interval": None,
    }
    assert project_settings() == {
        "send_timeout": 5.0,
        "forwarded_allow_ips": ("10.0.0.1",),
        "ws_ping_interval": None,
    }
    settings.DJWIRE_SERVER = {"send_timout": 5}
    with pytest.raises(
        ValueError, match="DJWIRE_SERVER: unknown server setting 'send_timout'"
    ) as info:
        project_settings()
    assert "send_timeout" in str(info.value) and "'port'" not in str(info.value)
    settings.DJWIRE_SERVER = {"port": 9000}
    with pytest.raises(ValueError, match="command line"):
        project_settings()
    settings.DJWIRE_SERVER = [("send_timeout", 5)]
    with pytest.raises(ValueError, match="must be a dict"):
        project_settings()


def test_the_command_line_wins_over_djwire_server(settings: Any) -> None:
    settings.DJWIRE_SERVER = {"send_timeout": 5, "ws_max_queue": 4}
    config = Config(send_timeout=9.0)
    merged = with_project_settings(config, explicit={"send_timeout"})
    assert merged.send_timeout == 9.0 and merged.ws_max_queue == 4


def test_every_field_is_either_settable_or_the_app() -> None:
    names = {f.name for f in dataclasses.fields(Config)}
    assert names == {*field_names(), "app"}


def test_forwarded_allow_ips_refuses_host_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="'proxy' is not an IP address or network"):
        Config(forwarded_allow_ips=("10.0.0.1", "proxy")).validate()
    Config(forwarded_allow_ips=("10.0.0.0/8", "::1", "*", "unix")).validate()
    assert main(["serve", "a:b", "--forwarded-allow-ips", "127.0.0.1,nginx"]) == 2
    error = capsys.readouterr().err
    assert "'nginx' is not an IP address or network (host names are not resolved)" in error


def test_uvloop_asked_for_but_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    with pytest.raises(ValueError, match="uvloop is not installed"):
        Config(loop="uvloop").validate()
    Config(loop="auto").validate()


def test_negative_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="send_timeout must not be negative"):
        Config(send_timeout=-1.0).validate()
