"""User-facing errors: one line that names the thing, the problem and the fix.

Library code raises :class:`InputError` for bad input (a wrong name, a missing folder, an
impossible argument). The ``ssl4gie`` command prints its message on one line and exits with
code 2; Python callers can catch it as a ``ValueError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InputError(ValueError):
    """Bad input from the user. The message is one line: what is wrong and how to fix it."""


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ``" (did you mean 'a', 'b'?)"`` for close matches of ``name``, or ``""``."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    if not matches:
        return ""
    return " (did you mean " + ", ".join(repr(m) for m in matches) + "?)"


def check_choice(kind: str, name: str, choices: Iterable[str]) -> str:
    """Return ``name`` if it is one of ``choices``, else raise :class:`InputError` listing them.

    >>> check_choice("layout", "kvasir-seg", ["kvasir-seg", "c3vd"])
    'kvasir-seg'
    """
    choices = list(choices)
    if name in choices:
        return name
    raise InputError(
        f"unknown {kind} {name!r}{did_you_mean(name, choices)}; choose one of: {', '.join(choices)}"
    )
