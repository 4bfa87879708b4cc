"""The server knows ASGI, not djwire's application side (docs/architecture.md).

It imports no routing, layers, consumers or anything above them; what it offers
applications beyond ASGI goes through the neutral module ``djwire.extensions``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import djwire.server

SERVER = Path(djwire.server.__file__).resolve().parent
#: What the server may import of djwire: itself, the bottom of the import graph, and
#: the Django sync-view fast path (djwire.django_http: Django and the bottom only).
ALLOWED = (
    "djwire.server",
    "djwire.exceptions",
    "djwire.extensions",
    "djwire.typing",
    "djwire.django_http",
)


def djwire_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``djwire...`` module that ``path`` imports, at any depth of its code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "djwire":
                found += [(node.lineno, f"djwire.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "djwire"]


def allowed(module: str) -> bool:
    return module == "djwire.__version__" or any(
        module == prefix or module.startswith(prefix + ".") for prefix in ALLOWED
    )


def test_the_server_imports_nothing_of_the_application_side() -> None:
    offenders = [
        f"{path.relative_to(SERVER.parent)}:{line} imports {module}"
        for path in sorted(SERVER.rglob("*.py"))
        for line, module in djwire_imports(path)
        if not allowed(module)
    ]
    assert offenders == []


def test_serving_a_websocket_loads_no_routing_layers_or_consumers() -> None:
    """At run time too: a server with a bare app leaves the app side unimported."""
    script = (
        "import sys\n"
        "import djwire.server.http_session, djwire.server.websocket_session, djwire.server.run\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'djwire'"
        " and not m.startswith('djwire.server'))\n"
        "print(' '.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert set(out) <= {"djwire", "djwire.exceptions", "djwire.extensions", "djwire.typing"}
