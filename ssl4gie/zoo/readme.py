"""The README's model-zoo table, generated from the registry.

``python -m ssl4gie.zoo.readme [README.md]`` rewrites the lines between the markers; a test
fails when the README and the registry disagree. ``ssl4gie zoo list`` prints the same rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ssl4gie.zoo.registry import backbone_card, builtin_names

START = "<!-- zoo-table:start -->"
END = "<!-- zoo-table:end -->"
COLUMNS = ("name", "architecture", "method", "data", "licence", "available", "source")
_SOURCES = {"hub": "Hub", "url": "upstream, converted on first use", "manual": "manual download"}


def zoo_rows(names: list[str] | None = None) -> list[tuple[str, ...]]:
    """One row of :data:`COLUMNS` per zoo entry (built-in entries when ``names`` is None)."""
    rows = []
    for name in builtin_names() if names is None else names:
        card = backbone_card(name)
        available = "yes" if card.available else "no"
        source = _SOURCES.get(card.source_kind, "-") + (", gated" if card.access else "")
        rows.append(
            (name, card.architecture, card.method, card.data, card.license, available, source)
        )
    return rows


def readme_table() -> str:
    """The Markdown table of the built-in zoo (what sits between the README markers).

    Examples:
        >>> readme_table().splitlines()[0]
        '| name | architecture | method | data | licence | available | source |'
    """
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name, *cells in zoo_rows():
        lines.append("| " + " | ".join([f"`{name}`", *cells]) + " |")
    return "\n".join(lines)


def with_table(readme: str) -> str:
    """``readme`` with the text between the markers replaced by :func:`readme_table`."""
    if START not in readme or END not in readme:
        raise ValueError(f"the README has no {START} ... {END} markers")
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{readme_table()}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the README's zoo table in place; print whether it changed."""
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0] if argv else "README.md")
    text = path.read_text(encoding="utf-8")
    updated = with_table(text)
    path.write_text(updated, encoding="utf-8")
    print(f"{path}: zoo table {'updated' if updated != text else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
