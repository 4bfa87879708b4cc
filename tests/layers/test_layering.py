"""Each layer backend stands on the shared layer code, never on a sibling backend."""

from __future__ import annotations

import ast
from pathlib import Path

import djwire.layers

LAYERS = Path(djwire.layers.__file__).parent
#: Backend -> its modules (a module, or a package of them).
BACKENDS = {"memory": ["memory.py"], "ipc": ["ipc.py", "ipc"], "redis": ["redis"]}


def imported_layer_modules(path: Path) -> set[str]:
    """The ``djwire.layers`` submodules ``path`` imports (first component only)."""
    package = path.parent.relative_to(LAYERS.parent.parent).parts  # ("djwire", "layers", ...)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                parts = base + (node.module.split(".") if node.module else [])
                names = [".".join([*parts, alias.name]) for alias in node.names]
                names.append(".".join(parts))
            else:
                names = [node.module or ""]
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["djwire", "layers"] and len(parts) > 2:
                found.add(parts[2])
    return found


def backend_files(entries: list[str]) -> list[Path]:
    files = []
    for entry in entries:
        path = LAYERS / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    return files


def test_no_backend_imports_a_sibling_backend() -> None:
    offences = []
    for backend, entries in BACKENDS.items():
        siblings = {
            Path(entry).stem
            for other, more in BACKENDS.items()
            if other != backend
            for entry in more
        }
        for path in backend_files(entries):
            for module in imported_layer_modules(path) & siblings:
                offences.append(f"{path.relative_to(LAYERS)} imports djwire.layers.{module}")
    assert offences == []


def test_the_check_sees_relative_imports() -> None:
    # Guard the guard: core.py's own imports of shared modules are found.
    assert {"base", "delivery", "local"} <= imported_layer_modules(LAYERS / "redis" / "core.py")
