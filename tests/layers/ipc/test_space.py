"""The shared space: one per project by default, and closed to other users."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

from djwire.exceptions import InvalidChannelLayerError
from djwire.layers.ipc import IPCChannelLayer
from djwire.layers.ipc import space as spaces
from tests.support.unavailable import unavailable

from .conftest import MakeLayer, PeerProcess

SETTINGS = 'SECRET_KEY = "x"\nINSTALLED_APPS = []\n'


def make_project(root: Path, package: str) -> dict[str, str]:
    """A project checkout at ``root``: ``package/settings.py``; its environment."""
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "settings.py").write_text(SETTINGS)
    pythonpath = os.pathsep.join([str(root), str(Path(__file__).resolve().parents[3])])
    return {"PYTHONPATH": pythonpath, "DJANGO_SETTINGS_MODULE": f"{package}.settings"}


async def test_unrelated_projects_on_one_machine_do_not_see_each_other(tmp_path: Path) -> None:
    one = make_project(tmp_path / "one", "proj")
    other_checkout = make_project(tmp_path / "two", "proj")  # same package, elsewhere
    other_project = make_project(tmp_path / "three", "shop")
    started: list[PeerProcess] = []
    paths: list[Path] = []
    try:
        for env in (one, one, other_checkout, other_project):
            started.append(await PeerProcess.start(None, env=env))
            paths.append(Path(await started[-1].call("space")))
        listener, sibling, stranger, copycat = started
        assert paths[0] == paths[1]  # one project: one space, without configuration
        assert len({paths[0], paths[2], paths[3]}) == 3
        assert paths[0].name.startswith("proj-") and paths[3].name.startswith("shop-")
        channel = await listener.call("new_channel")
        await listener.call("group_add", group="room", channel=channel)
        jobs = listener.request("receive_many", channel="jobs", count=2, timeout=2)
        for outsider in (stranger, copycat):
            await outsider.call("send", channel="jobs", message={"type": "intruder"})
            await outsider.call("group_send", group="room", message={"type": "intruder"})
            assert await outsider.call("group_channels", group="room") == []
        await sibling.call("send", channel="jobs", message={"type": "sibling"})
        await sibling.call("group_send", group="room", message={"type": "sibling"})
        assert await jobs == [{"type": "sibling"}]
        assert await listener.call("receive_many", channel=channel, count=2, timeout=0.5) == [
            {"type": "sibling"}
        ]
    finally:
        for peer in started:
            await peer.finish()
        for path in set(paths):  # default spaces live outside tmp_path
            shutil.rmtree(path, ignore_errors=True)


def test_the_default_name_follows_the_settings_module(settings) -> None:
    name = spaces.project_name()
    assert name.startswith("tests-")
    assert spaces.project_name() == name  # stable
    assert IPCChannelLayer().space == spaces.base_directory() / f"djwire-{os.geteuid()}" / name


async def test_files_are_private_and_other_users_are_kept_out(
    make_layer: MakeLayer, space: Path
) -> None:
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    assert stat.S_IMODE(os.stat(space).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(space / "p").st_mode) == 0o700
    for name in ("store.sqlite3", "store.sqlite3-wal", "store.sqlite3-shm"):
        assert stat.S_IMODE(os.stat(space / name).st_mode) == 0o600, name
    assert stat.S_IMODE(os.stat(space / "p" / layer.token).st_mode) == 0o600
    if os.geteuid() != 0:
        unavailable("entering the space as another user needs root (to become 'nobody')")
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        unavailable("a system python3 that user 'nobody' can run is missing")
    intruder = textwrap.dedent(
        """
        import os, socket, sqlite3, sys
        space, token = sys.argv[1], sys.argv[2]
        refused = []
        for attempt in (
            lambda: os.listdir(space),
            lambda: open(os.path.join(space, "store.sqlite3"), "rb").read(1),
            lambda: sqlite3.connect(os.path.join(space, "store.sqlite3")).execute(
                "SELECT * FROM members").fetchall(),
            lambda: socket.socket(socket.AF_UNIX).connect(os.path.join(space, "p", token)),
        ):
            try:
                attempt()
            except (PermissionError, sqlite3.OperationalError):
                refused.append(True)
            else:
                refused.append(False)
        print(refused)
        """
    )

    def intrude() -> str:
        result = subprocess.run(
            [python, "-c", intruder, str(space), layer.token],
            user=65534,
            group=65534,
            capture_output=True,
            text=True,
            timeout=30,
            cwd="/",
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert await asyncio.to_thread(intrude) == "[True, True, True, True]"
    # Even with the directory opened up, the files' own modes keep others out.
    os.chmod(space, 0o711)
    os.chmod(space / "p", 0o711)
    try:
        assert await asyncio.to_thread(intrude) == "[True, True, True, True]"
    finally:
        os.chmod(space, 0o700)
        os.chmod(space / "p", 0o700)


async def test_a_space_others_could_enter_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    with pytest.raises(InvalidChannelLayerError, match="mode 0755"):
        await IPCChannelLayer(path=loose).new_channel()
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(InvalidChannelLayerError, match="symbolic link"):
        await IPCChannelLayer(path=link).group_add("g", "c")
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 65534, 65534)
        with pytest.raises(InvalidChannelLayerError, match="belongs to uid 65534"):
            await IPCChannelLayer(path=foreign).send("c", {"type": "x"})


def test_bad_names_and_paths_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(InvalidChannelLayerError, match="name must be"):
        IPCChannelLayer(name="../escape")
    with pytest.raises(InvalidChannelLayerError, match="too long"):
        IPCChannelLayer(path=tmp_path / ("x" * 120))
    with pytest.raises(InvalidChannelLayerError, match="'name' or 'path'"):
        IPCChannelLayer(name="a", path=tmp_path)
    with pytest.raises(InvalidChannelLayerError, match="max_message_size"):
        IPCChannelLayer(path=tmp_path, max_message_size=0)


def test_asgi_ipc_options_are_understood(tmp_path: Path) -> None:
    # Channels 1's asgi_ipc.IPCChannelLayer(prefix=..., channel_memory=..., group_memory=...)
    layer = IPCChannelLayer(prefix="mysite", channel_memory=100 << 20, group_memory=20 << 20)
    assert layer.space.name == "mysite"
    assert layer.limits.max_store_size == 120 << 20
