"""A griffe extension: the reST habits of ssl4gie's docstrings, rewritten for mkdocstrings.

The docstrings are Google style with two reST habits that Markdown renders badly:

- Sphinx roles (``:func:`load_backbone```, ``:class:`~ssl4gie.errors.InputError```) become
  code that links to the object's API entry when it has one (an optional autorefs reference:
  no link, and no warning, when the object is not rendered anywhere).
- doctest lines (``>>> ...``) outside an ``Examples:`` section, which Markdown would show as
  nested quotes, become ``pycon`` code blocks; a paragraph ending in ``::`` ends in ``:``
  (its indented block is a code block in Markdown too).

And two Google-style liberties griffe does not parse: an ``Example:`` section becomes
``Examples:`` (griffe knows only the plural), and argument names grouped over two lines
(``a, b,`` then ``c: ...``) are joined onto one line.

Loaded by mkdocstrings (``extensions`` in ``mkdocs.yml``); it changes what is rendered, never
the code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
SECTION = re.compile(r"^(\s*)Examples?:\s*$")
DOCTEST_FLAG = re.compile(r"\s*# doctest:.*$")
ARGS = re.compile(r"^(\s*)(Args|Arguments|Parameters):\s*$")


def _target(obj: griffe.Object, name: str) -> str | None:
    """The full path ``name`` refers to from ``obj``'s scope, or None."""
    if name.startswith("ssl4gie"):
        return name
    if name.startswith("."):  # relative to the module: '.base', '..errors'
        module = obj.module
        package = module.path if module.is_package else module.path.rpartition(".")[0]
        dots = len(name) - len(name.lstrip("."))
        for _ in range(dots - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{name.lstrip('.')}"
    head, _, rest = name.partition(".")
    scopes = [obj, obj.parent] if obj.parent is not None else [obj]
    for scope in scopes:
        try:
            resolved = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError):
            continue
        return f"{resolved}.{rest}" if rest else resolved
    return None


def _canonical(loader: griffe.GriffeLoader, path: str) -> str:
    """``path`` with re-exports followed to where the object is defined."""
    try:
        found = loader.modules_collection[path]
        return found.final_target.path if found.is_alias else found.path
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return path


def convert_roles(text: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str:
    """Sphinx roles -> ``<code>`` inside an optional autorefs link."""

    def replace(match: re.Match) -> str:
        short, name = match.group(1) == "~", match.group(2).strip()
        shown = name.rsplit(".", 1)[-1] if short else name.lstrip(".")
        target = _target(obj, name)
        code = f"<code>{shown}</code>"
        if target is None:
            return code
        return f'<autoref identifier="{_canonical(loader, target)}" optional>{code}</autoref>'

    return ROLE.sub(replace, text)


def join_grouped_names(text: str) -> str:
    """In ``Args:`` sections, join an item line ending in ``,`` (no ``:``) with the next."""
    lines = text.splitlines()
    out: list[str] = []
    args_indent: int | None = None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if line.strip() and args_indent is not None and indent <= args_indent:
            args_indent = None
        if match := ARGS.match(line):
            args_indent = len(match.group(1))
        previous = out[-1] if out else ""
        joinable = previous.rstrip().endswith(",") and ":" not in previous
        if args_indent is not None and joinable and line.strip():
            out[-1] = f"{previous.rstrip()} {line.strip()}"
            continue
        out.append(line)
    return "\n".join(out)


def fence_doctests(text: str) -> str:
    """Wrap doctest runs outside ``Examples:`` sections in ``pycon`` fences; ``::`` -> ``:``."""
    lines = text.splitlines()
    out: list[str] = []
    section_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        if line.strip() and section_indent is not None and indent <= section_indent:
            section_indent = None
        if match := SECTION.match(line):
            section_indent = len(match.group(1))
            line = f"{match.group(1)}Examples:"
        if section_indent is None and line.lstrip().startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                text = lines[i][indent:] if lines[i][:indent].isspace() else lines[i]
                block.append(DOCTEST_FLAG.sub("", text))
                i += 1
            out += [" " * indent + "```pycon", *(" " * indent + b for b in block)]
            out.append(" " * indent + "```")
            continue
        if section_indent is None and line.rstrip().endswith("::") and line.strip() != "::":
            line = line.rstrip()[:-1]
        out.append(line)
        i += 1
    return "\n".join(out)


class RstDocstrings(griffe.Extension):
    """Rewrite every docstring of a package once it is loaded (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Convert the docstrings of ``pkg`` and everything under it."""
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.docstring is not None:
                text = join_grouped_names(fence_doctests(obj.docstring.value))
                obj.docstring.value = convert_roles(text, obj, loader)
            stack.extend(member for member in obj.members.values() if not member.is_alias)
