"""Which way the imports go (docs: /work/shared/DESIGN.md "Which way the imports go").

Every ``import`` statement of djwire/ counts, including those inside functions (they run
too, only later); only ``if TYPE_CHECKING:`` blocks are left out, as they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "djwire"

#: Modules above the classic API (glue for Django and for tests), or the classic API.
CLASSIC_OR_ABOVE = ("djwire.classic", "djwire.management", "djwire.testing")
#: Top-level glue: Django's app config and system checks wire the parts together.
GLUE = {"djwire.apps", "djwire.checks"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_nodes(node: ast.AST, inside: list[str]) -> Iterator[tuple[ast.AST, list[str]]]:
    """Import statements under ``node``, with the names of the functions they are in."""
    for child in ast.iter_child_nodes(node):
        if is_type_checking_block(child):
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, inside
        scope = [*inside, child.name] if isinstance(child, ast.FunctionDef) else inside
        yield from import_nodes(child, scope)


def targets(module: str, node: ast.AST) -> set[str]:
    """The djwire modules an import statement imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        assert isinstance(node, ast.ImportFrom)
        base = node.module or ""
        if node.level:
            package = (
                module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            )
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names
        ]
    return {name for name in names if name in MODULES}


def imports() -> dict[str, dict[str, list[str]]]:
    """{module: {imported module: [function it is imported in, or "" at module level]}}."""
    graph: dict[str, dict[str, list[str]]] = {}
    for module, path in MODULES.items():
        edges = graph.setdefault(module, {})
        for node, inside in import_nodes(ast.parse(path.read_text()), []):
            for target in targets(module, node) - {module}:
                edges.setdefault(target, []).append(".".join(inside))
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(imports()) == []


def test_the_core_imports_the_classic_api_only_to_re_export_its_names() -> None:
    # The classic (2017) API sits on the core. Where Channels 1 kept a classic name in
    # a core module (channels.routing.route, channels.sessions.channel_session), that
    # module's __getattr__ hands it out lazily; nothing else in the core names it.
    offenders = [
        f"{module} imports {target} in {place or 'the module body'}"
        for module, edges in imports().items()
        if not module.startswith(CLASSIC_OR_ABOVE) and module not in GLUE
        for target, places in edges.items()
        if target.startswith("djwire.classic")
        for place in places
        if place != "__getattr__"
    ]
    assert offenders == []
