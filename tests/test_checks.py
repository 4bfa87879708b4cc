"""System checks explain a bad CHANNEL_LAYERS or ASGI_APPLICATION."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from djwire.checks import check_asgi_application, check_channel_layers

#: A module-level non-callable for ASGI_APPLICATION to point at.
not_an_application = "tests.asgi.application"


def ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


def layer_messages(settings: Any, value: Any) -> list[Any]:
    settings.CHANNEL_LAYERS = value
    return check_channel_layers()


def test_the_test_settings_pass(settings: Any) -> None:
    assert check_channel_layers() == []
    assert check_asgi_application() == []


def test_channel_layers_must_be_a_dict(settings: Any) -> None:
    assert ids(layer_messages(settings, ["default"])) == ["djwire.E001"]


def test_an_entry_must_be_a_dict(settings: Any) -> None:
    messages = layer_messages(settings, {"default": "djwire.layers.InMemoryChannelLayer"})
    assert ids(messages) == ["djwire.E002"]
    assert "BACKEND" in messages[0].hint


def test_an_entry_needs_a_backend(settings: Any) -> None:
    assert ids(layer_messages(settings, {"default": {"CONFIG": {}}})) == ["djwire.E003"]


def test_an_unimportable_backend_is_named_with_the_reason(settings: Any) -> None:
    messages = layer_messages(settings, {"default": {"BACKEND": "nowhere.Layer"}})
    assert ids(messages) == ["djwire.E004"]
    assert "nowhere.Layer" in messages[0].msg
    assert "ModuleNotFoundError" in messages[0].msg


def test_a_channels_backend_gets_a_porting_hint(settings: Any) -> None:
    messages = layer_messages(
        settings, {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    )
    assert ids(messages) == ["djwire.E004"]
    assert "djwire.layers.redis.RedisChannelLayer" in messages[0].hint


def test_a_backend_that_is_not_callable(settings: Any) -> None:
    messages = layer_messages(
        settings, {"default": {"BACKEND": "djwire.layers.manager.KNOWN_KEYS"}}
    )
    assert ids(messages) == ["djwire.E005"]


def test_config_must_be_a_dict(settings: Any) -> None:
    entry = {"BACKEND": "djwire.layers.InMemoryChannelLayer", "CONFIG": [("capacity", 1)]}
    assert ids(layer_messages(settings, {"default": entry})) == ["djwire.E006"]
    entry = {"BACKEND": "djwire.layers.InMemoryChannelLayer", "TEST_CONFIG": "x"}
    assert ids(layer_messages(settings, {"default": entry})) == ["djwire.E006"]


def test_config_keys_the_backend_rejects(settings: Any) -> None:
    entry = {"BACKEND": "djwire.layers.base.BaseChannelLayer", "CONFIG": {"capacty": 5}}
    messages = layer_messages(settings, {"default": entry})
    assert ids(messages) == ["djwire.E007"]
    assert "capacty" in messages[0].msg
    assert "capacity" in messages[0].hint


def test_an_unknown_key_is_a_warning_with_a_suggestion(settings: Any) -> None:
    entry = {"BACKEND": "djwire.layers.InMemoryChannelLayer", "CONFIGS": {}}
    messages = layer_messages(settings, {"default": entry})
    assert ids(messages) == ["djwire.W001"]
    assert messages[0].level == checks.WARNING
    assert "Did you mean 'CONFIG'" in messages[0].hint


def test_an_unimportable_classic_routing(settings: Any) -> None:
    entry = {"BACKEND": "djwire.layers.InMemoryChannelLayer", "ROUTING": "nowhere.routing"}
    assert ids(layer_messages(settings, {"default": entry})) == ["djwire.E008"]


def test_every_entry_is_checked(settings: Any) -> None:
    messages = layer_messages(
        settings,
        {"default": {"BACKEND": "djwire.layers.InMemoryChannelLayer"}, "other": {}},
    )
    assert ids(messages) == ["djwire.E003"]
    assert "'other'" in messages[0].msg


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "djwire.E010"),
        ("", "djwire.E010"),
        ("nowhere.asgi.application", "djwire.E011"),
        ("tests.test_checks.missing_name", "djwire.E011"),
        ("tests.test_checks.not_an_application", "djwire.E012"),
    ],
)
def test_a_bad_asgi_application(settings: Any, value: Any, expected: str) -> None:
    settings.ASGI_APPLICATION = value
    messages = check_asgi_application()
    assert ids(messages) == [expected]
    assert messages[0].hint


def test_a_good_asgi_application(settings: Any) -> None:
    settings.ASGI_APPLICATION = "djwire.security.websocket.WebsocketDenier"
    assert check_asgi_application() == []


def test_manage_py_check_reports_the_problem(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {}}
    with pytest.raises(SystemCheckError, match=r"djwire\.E003"):
        call_command("check")


def test_bad_server_settings_are_reported(settings) -> None:
    from django.core.checks import run_checks

    settings.DJWIRE_SERVER = {"ws_max_message_size": 1024}
    assert not [m for m in run_checks() if m.id == "djwire.E020"]
    settings.DJWIRE_SERVER = {"ws_max_message_sise": 1024}
    errors = [m for m in run_checks() if m.id == "djwire.E020"]
    assert len(errors) == 1 and "ws_max_message_sise" in errors[0].msg
    settings.DJWIRE_SERVER = {"port": 8000}
    assert [m for m in run_checks() if m.id == "djwire.E020"]


# -- several processes, a layer each keeps to itself (W010, W011) -----------------------

TWO_LAYERS = {
    "default": {"BACKEND": "djwire.layers.InMemoryChannelLayer"},
    "shared": {"BACKEND": "djwire.layers.redis.RedisChannelLayer"},
}


def test_layers_declare_whether_processes_share_them() -> None:
    from djwire.layers import InMemoryChannelLayer
    from djwire.layers.base import BaseChannelLayer
    from djwire.layers.redis import RedisChannelLayer

    assert InMemoryChannelLayer.shared_between_processes is False
    assert RedisChannelLayer.shared_between_processes is True
    assert BaseChannelLayer.shared_between_processes is False  # unless a layer says so


def test_several_server_processes_on_a_process_local_layer_warn(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CHANNEL_LAYERS = TWO_LAYERS
    monkeypatch.setenv("DJWIRE_SERVER_PROCESSES", "2")
    messages = [m for m in checks.run_checks() if m.id.startswith("djwire.W01")]
    assert ids(messages) == ["djwire.W010"]  # only the in-memory alias
    assert "CHANNEL_LAYERS['default']" in messages[0].msg
    assert "2 server processes" in messages[0].msg
    assert "RedisChannelLayer" in messages[0].hint


def test_one_process_on_a_process_local_layer_is_fine(settings: Any) -> None:
    settings.CHANNEL_LAYERS = TWO_LAYERS
    assert not [m for m in checks.run_checks() if m.id.startswith("djwire.W01")]


def test_check_deploy_warns_about_a_process_local_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = TWO_LAYERS
    messages = checks.run_checks(include_deployment_checks=True)
    assert [m.id for m in messages if m.id.startswith("djwire.W01")] == ["djwire.W011"]


def test_the_server_start_runs_the_processes_check(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from djwire.extensions import STARTUP_CHECKS

    monkeypatch.setenv("DJWIRE_SERVER_PROCESSES", "4")
    assert ids(checks.run_checks(tags=[STARTUP_CHECKS])) == ["djwire.W010"]
