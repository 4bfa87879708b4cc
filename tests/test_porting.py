"""The Channels -> djwire rewrite (``python -m djwire.porting``): what it changes, what it
leaves alone, and the command."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from djwire.porting import rewrite_source


def rewritten(source: str) -> str:
    return rewrite_source(textwrap.dedent(source)).source


def test_imports_of_channels_become_imports_of_djwire() -> None:
    before = """\
        import channels
        import channels.layers
        import channels.layers as cl
        import os, channels.db
        from channels import DEFAULT_CHANNEL_LAYER
        from channels.generic.websocket import AsyncJsonWebsocketConsumer
        from channels.routing import (
            ProtocolTypeRouter,
            URLRouter,
        )
        from channels_redis.core import RedisChannelLayer
        """
    assert rewritten(before) == textwrap.dedent("""\
        import djwire
        import djwire.layers
        import djwire.layers as cl
        import os, djwire.db
        from djwire import DEFAULT_CHANNEL_LAYER
        from djwire.generic.websocket import AsyncJsonWebsocketConsumer
        from djwire.routing import (
            ProtocolTypeRouter,
            URLRouter,
        )
        from djwire.layers.redis import RedisChannelLayer
        """)


def test_code_using_the_imported_package_is_rewritten() -> None:
    before = """\
        import channels.layers

        layer = channels.layers.get_channel_layer()
        print(channels.__version__)
        """
    assert "djwire.layers.get_channel_layer()" in rewritten(before)
    assert "djwire.__version__" in rewritten(before)


def test_names_that_are_not_the_package_are_left_alone() -> None:
    before = """\
        from myapp import channels
        from channels.layers import get_channel_layer

        channels.append(1)
        layer = get_channel_layer()
        layer.channels.clear()
        payload = {"channels": ["a"], "type": "channels"}


        def names(channels):
            return channels.copy()
        """
    after = rewritten(before)
    assert after == textwrap.dedent(before).replace("from channels.layers", "from djwire.layers")


def test_dotted_paths_in_strings_and_comments_are_rewritten() -> None:
    before = """\
        # see channels.layers.InMemoryChannelLayer
        BACKEND = "channels.layers.InMemoryChannelLayer"
        REDIS = 'channels_redis.core.RedisChannelLayer'
        patch("channels.db.close_old_connections")
        text = "Django channels. Not a path"
        ONE = ["asgiref.inmemory.ChannelLayer", "asgi_redis.RedisChannelLayer"]
        """
    assert rewritten(before) == textwrap.dedent("""\
        # see djwire.layers.InMemoryChannelLayer
        BACKEND = "djwire.layers.InMemoryChannelLayer"
        REDIS = 'djwire.layers.redis.RedisChannelLayer'
        patch("djwire.db.close_old_connections")
        text = "Django channels. Not a path"
        ONE = ["djwire.layers.InMemoryChannelLayer", "djwire.layers.redis.RedisChannelLayer"]
        """)


def test_the_channels_app_in_installed_apps_becomes_djwire() -> None:
    before = """\
        INSTALLED_APPS = [
            "django.contrib.auth",
            "channels",
        ]
        INSTALLED_APPS += ('channels',)
        settings.configure(INSTALLED_APPS=("channels", "tests"), OTHER=["channels"])
        """
    assert rewritten(before) == textwrap.dedent("""\
        INSTALLED_APPS = [
            "django.contrib.auth",
            "djwire",
        ]
        INSTALLED_APPS += ('djwire',)
        settings.configure(INSTALLED_APPS=("djwire", "tests"), OTHER=["channels"])
        """)


def test_what_needs_a_human_is_noted_not_changed() -> None:
    source = textwrap.dedent("""\
        from channels_redis.pubsub import RedisPubSubChannelLayer
        INSTALLED_APPS = ["daphne", "channels"]
        """)
    result = rewrite_source(source, "settings.py")
    assert result.source.splitlines()[0] == source.splitlines()[0]
    notes = "\n".join(result.notes)
    assert "settings.py:1:" in notes and "channels_redis" in notes
    assert "settings.py:2:" in notes and "'daphne'" in notes


def test_the_rewrite_is_idempotent() -> None:
    source = "from channels.layers import get_channel_layer\nX = 'channels.layers.A'\n"
    once = rewrite_source(source).source
    assert rewrite_source(once).source == once
    assert not rewrite_source(once).changed


def project(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "consumers.py").write_text("from channels.consumer import AsyncConsumer\n")
    (tmp_path / "app" / "plain.py").write_text("x = 1\n")
    venv = tmp_path / ".venv" / "lib"
    venv.mkdir(parents=True)
    (venv / "channels_code.py").write_text("import channels\n")
    env = tmp_path / "env"
    (env / "lib").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("")
    (env / "lib" / "site.py").write_text("import channels\n")
    return tmp_path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "djwire.porting", *map(str, args)], capture_output=True, text=True
    )


@pytest.mark.parametrize("flag", ["--check", "--diff"])
def test_check_and_diff_change_nothing(tmp_path: Path, flag: str) -> None:
    root = project(tmp_path)
    result = run(flag, root)
    assert result.returncode == (1 if flag == "--check" else 0), result.stderr
    if flag == "--diff":
        assert "+from djwire.consumer import AsyncConsumer" in result.stdout
    else:
        assert "would rewrite" in result.stdout and "consumers.py" in result.stdout
    assert "channels.consumer" in (root / "app" / "consumers.py").read_text()


def test_the_command_rewrites_the_project_but_not_virtualenvs(tmp_path: Path) -> None:
    root = project(tmp_path)
    result = run(root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"rewrote {root / 'app' / 'consumers.py'}"
    assert (root / "app" / "consumers.py").read_text() == (
        "from djwire.consumer import AsyncConsumer\n"
    )
    assert (root / ".venv" / "lib" / "channels_code.py").read_text() == "import channels\n"
    assert (root / "env" / "lib" / "site.py").read_text() == "import channels\n"
    assert run("--check", root).returncode == 0


def test_a_file_that_does_not_parse_is_reported_and_the_others_rewritten(
    tmp_path: Path,
) -> None:
    (tmp_path / "broken.py").write_text("print 'python 2'\n")
    (tmp_path / "fine.py").write_text("import channels\n")
    result = run(tmp_path)
    assert result.returncode == 2
    assert f"cannot rewrite {tmp_path / 'broken.py'}" in result.stderr
    assert (tmp_path / "fine.py").read_text() == "import djwire\n"
