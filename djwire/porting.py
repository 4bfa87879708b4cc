"""Port a Django Channels project to djwire: rewrite ``channels.`` to ``djwire.``.

    python -m djwire.porting PATH...            # rewrite the .py files in place
    python -m djwire.porting --diff PATH...     # show what would change, write nothing
    python -m djwire.porting --check PATH...    # exit 1 if anything would change

What changes, and nothing else:

* imports: ``import channels[.x]``, ``from channels[.x] import ...`` and
  ``channels_redis.core`` become ``djwire[.x]`` and ``djwire.layers.redis``;
* code that uses a module bound by ``import channels...`` (``channels.layers.X``);
* dotted paths in strings and comments: ``"channels.layers.InMemoryChannelLayer"``,
  ``"channels_redis.core.RedisChannelLayer"``, ``mock.patch("channels.db...")``, and
  Channels 1's backends ``"asgiref.inmemory.ChannelLayer"`` and
  ``"asgi_redis.RedisChannelLayer"``;
* ``"channels"`` as an entry of ``INSTALLED_APPS`` becomes ``"djwire"``.

A variable or attribute named ``channels`` (``layer.channels``, ``channels = []``) is
left alone. What the rewrite cannot decide is printed as a note with its line:
``"daphne"`` in INSTALLED_APPS (djwire's runserver replaces it) and other
``channels_redis`` names. It only reads Python's own tokenizer and parser: it works on
code for any Python 3 and imports nothing of the project.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import io
import re
import sys
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Rewrite", "main", "rewrite_file", "rewrite_source", "rewrite_tree"]

#: Dotted module paths in strings and comments, and Channels 1's layer backends.
_IN_TEXT = [
    (
        re.compile(r"(?<![\w.])asgiref\.inmemory\.ChannelLayer\b"),
        "djwire.layers.InMemoryChannelLayer",
    ),
    (
        re.compile(r"(?<![\w.])asgi_redis\.RedisChannelLayer\b"),
        "djwire.layers.redis.RedisChannelLayer",
    ),
    (re.compile(r"(?<![\w.])channels_redis\.core\b"), "djwire.layers.redis"),
    (re.compile(r"(?<![\w.])channels\.(?=[A-Za-z_])"), "djwire."),
]
#: The top-level packages the rewrite replaces.
_PACKAGES = ("channels", "channels_redis")
#: Directories never descended into.
_SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages"}
#: Token types whose text may hold a dotted path (f-string parts on Python 3.12+).
_TEXT_TOKENS = {tokenize.STRING, tokenize.COMMENT} | (
    {tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set()
)


@dataclass
class Rewrite:
    """The result for one source: the text before and after, and notes for a human."""

    original: str
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.source != self.original


@dataclass(frozen=True)
class _Edit:
    start: tuple[int, int]
    end: tuple[int, int]
    text: str


def _installed_apps_entries(tree: ast.AST) -> Iterator[ast.Constant]:
    """String entries of ``INSTALLED_APPS = [...]`` / ``INSTALLED_APPS=(...)`` / ``+=``."""
    for node in ast.walk(tree):
        values: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "INSTALLED_APPS" for t in targets):
                values = [node.value] if node.value is not None else []
        elif isinstance(node, ast.keyword) and node.arg == "INSTALLED_APPS":
            values = [node.value]
        for value in values:
            if isinstance(value, ast.List | ast.Tuple):
                for element in value.elts:
                    if isinstance(element, ast.Constant) and isinstance(element.value, str):
                        yield element


def _bound_by_import(tree: ast.AST) -> set[str]:
    """Which of ``channels``/``channels_redis`` a plain ``import`` binds as a name."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if alias.asname is None and top in _PACKAGES:
                    bound.add(top)
    return bound


def _logical_lines(source: str) -> Iterator[list[tokenize.TokenInfo]]:
    """The significant tokens of each statement (split at newlines and ``;``)."""
    line: list[tokenize.TokenInfo] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NEWLINE or (tok.type == tokenize.OP and tok.string == ";"):
            yield line
            line = []
        elif tok.type not in (tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            line.append(tok)
    if line:
        yield line


def _note_channels_redis(filename: str, tok: tokenize.TokenInfo) -> str:
    return (
        f"{filename}:{tok.start[0]}: {tok.line.strip()!r} uses channels_redis beyond its "
        "core layer: change it by hand (djwire.layers.redis.RedisChannelLayer replaces "
        "channels_redis.core.RedisChannelLayer)"
    )


def _name_edit(
    line: list[tokenize.TokenInfo], index: int, filename: str, notes: list[str]
) -> _Edit | None:
    """The edit for the module name ``channels``/``channels_redis`` at ``index``."""
    tok = line[index]
    if tok.string == "channels":
        return _Edit(tok.start, tok.end, "djwire")
    if [t.string for t in line[index : index + 3]] == ["channels_redis", ".", "core"]:
        return _Edit(tok.start, line[index + 2].end, "djwire.layers.redis")
    notes.append(_note_channels_redis(filename, tok))
    return None


def rewrite_source(source: str, filename: str = "<source>") -> Rewrite:
    """Rewrite one Python source; raises SyntaxError if it does not parse."""
    tree = ast.parse(source, filename)
    bound = _bound_by_import(tree)
    result = Rewrite(source, source)
    app_entries = {}
    for entry in _installed_apps_entries(tree):
        app_entries[(entry.lineno, entry.col_offset)] = entry.value
        if entry.value == "daphne":
            result.notes.append(
                f"{filename}:{entry.lineno}: 'daphne' in INSTALLED_APPS: remove it; djwire's "
                "runserver serves ASGI (list 'djwire' first)"
            )
    edits: list[_Edit] = []
    for line in _logical_lines(source):
        first = line[0].string if line else ""
        for index, tok in enumerate(line):
            previous = line[index - 1].string if index else ""
            if tok.type == tokenize.NAME and tok.string in _PACKAGES:
                following = line[index + 1].string if index + 1 < len(line) else ""
                imported = (first == "import" and previous in ("import", ",")) or (
                    first == "from" and previous == "from"
                )
                used = previous != "." and following == "." and tok.string in bound
                if imported or used:
                    edit = _name_edit(line, index, filename, result.notes)
                    if edit is not None:
                        edits.append(edit)
            elif tok.type in _TEXT_TOKENS:
                if tok.type == tokenize.STRING and app_entries.get(tok.start) == "channels":
                    quote = tok.string[-1]
                    edits.append(_Edit(tok.start, tok.end, f"{quote}djwire{quote}"))
                    continue
                text = tok.string
                for pattern, replacement in _IN_TEXT:
                    text = pattern.sub(replacement, text)
                if text != tok.string:
                    edits.append(_Edit(tok.start, tok.end, text))
    result.source = _apply(source, edits)
    return result


def _apply(source: str, edits: Iterable[_Edit]) -> str:
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    out, position = [], 0
    for edit in sorted(edits, key=lambda e: e.start):
        start = offsets[edit.start[0] - 1] + edit.start[1]
        end = offsets[edit.end[0] - 1] + edit.end[1]
        out.append(source[position:start])
        out.append(edit.text)
        position = end
    out.append(source[position:])
    return "".join(out)


def _inside_a_virtualenv(root: Path, parts: tuple[str, ...]) -> bool:
    return any(
        (root.joinpath(*parts[:n]) / "pyvenv.cfg").exists() for n in range(1, len(parts) + 1)
    )


def _python_files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
            continue
        for found in sorted(path.rglob("*.py")):
            parts = found.relative_to(path).parts[:-1]
            if any(part in _SKIPPED_DIRS or part.startswith(".") for part in parts):
                continue
            if not _inside_a_virtualenv(path, parts):
                yield found


def rewrite_file(path: Path, *, write: bool = True) -> Rewrite:
    """Rewrite ``path`` (in place when ``write`` and something changes)."""
    result = rewrite_source(path.read_text(encoding="utf-8"), str(path))
    if write and result.changed:
        path.write_text(result.source, encoding="utf-8")
    return result


def rewrite_tree(paths: Sequence[Path], *, write: bool = True) -> dict[Path, Rewrite]:
    """Rewrite every .py file under ``paths``; {file: result} for those that change or
    have notes."""
    results = {}
    for path in _python_files(paths):
        result = rewrite_file(path, write=write)
        if result.changed or result.notes:
            results[path] = result
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m djwire.porting",
        description="Rewrite a Django Channels project's imports and settings for djwire.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="files or directories")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--diff", action="store_true", help="print a diff, change nothing")
    mode.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    args = parser.parse_args(argv)
    unreadable = 0
    changed = 0
    for path in _python_files(args.paths):
        try:
            result = rewrite_file(path, write=not (args.diff or args.check))
        except (SyntaxError, UnicodeDecodeError) as exc:
            # Python 2 code, say: the other files are still rewritten.
            print(f"cannot rewrite {path}: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        changed += result.changed
        if args.diff and result.changed:
            sys.stdout.writelines(
                difflib.unified_diff(
                    result.original.splitlines(keepends=True),
                    result.source.splitlines(keepends=True),
                    str(path),
                    str(path),
                )
            )
        elif result.changed:
            print(f"{'would rewrite' if args.check else 'rewrote'} {path}")
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
    if unreadable:
        return 2
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
