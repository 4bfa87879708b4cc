"""Where a shared space lives on disk, and who may enter it.

A *shared space* is one directory; every layer that opens the same directory shares
channels and groups with the others::

    <space>/                 0700, owned by the user running the processes
        store.sqlite3        0600  groups, named channels (SQLite, WAL; -wal and -shm
                                   files get the same mode)
        p/<token>            0600  one Unix socket per process (layer instance): its inbox

By default the space is ``<base>/djwire-<uid>/<name>``, where ``<base>`` is
``/dev/shm`` when it exists (memory-backed, gone at reboot, like the messages) and
the temporary directory otherwise, and ``<name>`` comes from the Django project:
the top-level package of ``DJANGO_SETTINGS_MODULE`` followed by a hash of the whole
module name and the real path of that package's directory. So two projects (or two
checkouts of one project) on a machine never share a space, nor do one project's
different settings modules (``settings.dev`` and ``settings.test``), while
``runserver``, ``runworker`` and ``djwire serve`` workers started with the same
settings always do. ``name=`` picks another name under the same base and ``path=``
any directory.

Other users are kept out by permissions alone: the directories are created 0700,
files 0600, and a directory that exists already is used only if it is ours, is not
a symbolic link, and gives group and others no access; anything else is refused
with an error naming the path, never loosened or followed.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
import tempfile
from pathlib import Path

from djwire.exceptions import InvalidChannelLayerError

#: Names under the base directory: short, so socket paths stay within the
#: ~107 bytes a Unix socket path may have.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")
#: Longest Unix socket path (sun_path is 108 bytes on Linux, 104 on macOS, with a NUL).
MAX_SOCKET_PATH = 103
#: Characters a process token adds to the space's path: "/p/" + 12 hex digits.
SOCKET_SUFFIX = len("/p/") + 12

STORE_FILE = "store.sqlite3"
SOCKETS_DIR = "p"


def base_directory() -> Path:
    """``/dev/shm`` where it is a directory, else the temporary directory."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def project_name(module: str | None = None) -> str:
    """The default name for settings ``module`` (by default, the one in use): the
    module's top-level package, and a hash of the module's name and where that
    package is.

    Raises InvalidChannelLayerError when Django settings were not loaded from a module
    (``settings.configure()``): then there is nothing project-specific to go by.
    """
    if module is None:
        from django.conf import settings

        module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
        if settings.configured:
            module = getattr(settings, "SETTINGS_MODULE", None) or module
    if not module:
        raise InvalidChannelLayerError(
            "IPCChannelLayer derives its shared space from DJANGO_SETTINGS_MODULE, which is "
            "not set; give CONFIG a 'name' (or a 'path') that every process of the project uses"
        )
    top = module.partition(".")[0]
    where = _package_directory(top) or os.getcwd()
    digest = hashlib.sha256(f"{module}\0{where}".encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9._-]", "-", top)[:32] or "project"
    return f"{slug}-{digest}"


def _package_directory(top: str) -> str | None:
    package = sys.modules.get(top)
    if package is None:
        try:
            import importlib

            package = importlib.import_module(top)
        except Exception:
            return None
    location = getattr(package, "__file__", None)
    if isinstance(location, str):
        return os.path.dirname(os.path.realpath(location))
    paths = list(getattr(package, "__path__", []))  # a namespace package
    return os.path.realpath(paths[0]) if paths else None


def resolve(name: str | None, path: str | os.PathLike[str] | None) -> Path:
    """The space directory for the ``name``/``path`` options (not created yet)."""
    if path is not None:
        if name is not None:
            raise InvalidChannelLayerError("IPCChannelLayer takes 'name' or 'path', not both")
        space = Path(path).absolute()
    else:
        if name is None:
            name = project_name()
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise InvalidChannelLayerError(
                f"IPCChannelLayer name must be 1-48 letters, digits, '.', '_' or '-' "
                f"(starting with a letter or digit), not {name!r}"
            )
        space = base_directory() / f"djwire-{os.geteuid()}" / name
    if len(os.fsencode(str(space))) + SOCKET_SUFFIX > MAX_SOCKET_PATH:
        raise InvalidChannelLayerError(
            f"IPCChannelLayer path {str(space)!r} is too long: Unix socket paths inside it "
            f"must stay under {MAX_SOCKET_PATH} bytes; use a path of at most "
            f"{MAX_SOCKET_PATH - SOCKET_SUFFIX} bytes"
        )
    return space


def prepare(space: Path) -> None:
    """Create the space (and its base ``djwire-<uid>``) 0700, or check that it is ours."""
    if space.parent.name == f"djwire-{os.geteuid()}":
        private_directory(space.parent)
    private_directory(space)
    private_directory(space / SOCKETS_DIR)


def private_directory(path: Path) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise InvalidChannelLayerError(
            f"IPCChannelLayer cannot create its directory {str(path)!r}: {exc}"
        ) from exc
    info = os.lstat(path)
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif info.st_uid != os.geteuid():
        problem = f"belongs to uid {info.st_uid}, not to this process's uid {os.geteuid()}"
    elif info.st_mode & 0o077:
        problem = f"has mode {stat.S_IMODE(info.st_mode):04o}; it must give others no access"
    if problem:
        raise InvalidChannelLayerError(
            f"IPCChannelLayer refuses {str(path)!r}: it {problem}. Remove it, or fix its owner "
            "and mode (0700), or choose another 'name' or 'path'"
        )


def private_file(path: Path) -> None:
    """Create ``path`` 0600 if it does not exist (SQLite then keeps that mode for its
    -wal and -shm files); refuse one that others may read."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise InvalidChannelLayerError(
                f"IPCChannelLayer refuses {str(path)!r}: not a regular file of this user"
            ) from None
        if info.st_mode & 0o077:
            os.chmod(path, 0o600)
        return
    os.close(fd)
