"""Shared pieces of the command groups: subcommand registries and a one-line-error parser.

A group module makes its registry with ``_SUBCOMMANDS, _subcommand = subcommand_registry()``,
decorates one function ``(args: argparse.Namespace) -> int`` per subcommand with
``@_subcommand(name, summary, _arg(...), ...)`` and builds its parser with
:func:`build_group_parser`. Usage errors become :class:`~ssl4gie.errors.InputError`: one line
on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from ssl4gie.errors import InputError

Run = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class _Subcommand:
    name: str
    summary: str
    arguments: tuple[tuple[tuple[str, ...], dict], ...]
    run: Run


def _arg(*flags: str, **options) -> tuple[tuple[str, ...], dict]:
    """One option, as ``parser.add_argument(*flags, **options)`` takes it."""
    return flags, options


def subcommand_registry() -> tuple[list[_Subcommand], Callable]:
    """A group's subcommand list and the decorator that appends to it."""
    subcommands: list[_Subcommand] = []

    def subcommand(name: str, summary: str, *arguments: tuple[tuple[str, ...], dict]):
        """Register the decorated function as subcommand ``name`` with ``arguments``."""

        def register(run: Run) -> Run:
            subcommands.append(_Subcommand(name, summary, arguments, run))
            return run

        return register

    return subcommands, subcommand


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors raise :class:`InputError` (one line, exit 2)."""

    def error(self, message: str):
        raise InputError(f"{message}; run '{self.prog} --help' for the options")


def build_group_parser(
    prog: str, description: str, subcommands: list[_Subcommand]
) -> argparse.ArgumentParser:
    """The parser of a command group with one subparser per registered subcommand."""
    parser = _Parser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="subcommand", required=True, metavar="<subcommand>")
    for command in subcommands:
        subparser = subparsers.add_parser(
            command.name, help=command.summary, description=command.summary
        )
        for flags, options in command.arguments:
            subparser.add_argument(*flags, **options)
        subparser.set_defaults(run=command.run)
    return parser
