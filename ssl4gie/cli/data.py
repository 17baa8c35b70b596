"""The ``ssl4gie data`` command group: one subcommand per decorated function.

A subcommand is a function ``(args: argparse.Namespace) -> int`` registered with
:func:`_subcommand`, which also declares its options (``_arg(...)``, as for
``add_argument``). Heavy imports happen inside the function, so ``--help`` stays fast. Usage
errors become :class:`~ssl4gie.errors.InputError`: one line on stderr and exit code 2.
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


_SUBCOMMANDS: list[_Subcommand] = []


def _arg(*flags: str, **options) -> tuple[tuple[str, ...], dict]:
    """One option, as ``parser.add_argument(*flags, **options)`` takes it."""
    return flags, options


def _subcommand(name: str, summary: str, *arguments: tuple[tuple[str, ...], dict]):
    """Register the decorated function as ``ssl4gie data <name>`` with ``arguments``."""

    def register(run: Run) -> Run:
        _SUBCOMMANDS.append(_Subcommand(name, summary, arguments, run))
        return run

    return register


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors raise :class:`InputError` (one line, exit 2)."""

    def error(self, message: str):
        raise InputError(f"{message}; run '{self.prog} --help' for the options")


@_subcommand(
    "synth",
    "write a synthetic endoscopy dataset in a real dataset's on-disk layout",
    _arg(
        "--layout",
        required=True,
        help="hyperkvasir-unlabeled, hyperkvasir-labeled, kvasir-seg, cvc-clinicdb, c3vd "
        "or imagefolder (layouts as in shared/DATASETS.md)",
    ),
    _arg("--root", required=True, help="dataset folder to create (new or empty)"),
    _arg("--n", type=int, required=True, help="number of frames (labelled: over the 23 classes)"),
    _arg("--size", type=int, default=256, help="frame height (short side) in px, >= 64"),
    _arg("--seed", type=int, default=0, help="same seed, byte-identical files (default 0)"),
    _arg("--quiet", action="store_true", help="no progress bar"),
)
def synth(args: argparse.Namespace) -> int:
    """Write the dataset and print where it went."""
    from ssl4gie.data.synthetic import synthesize

    root = synthesize(
        args.layout, args.root, args.n, size=args.size, seed=args.seed, progress=not args.quiet
    )
    print(f"wrote {args.n} synthetic frames in the {args.layout} layout to {root}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``ssl4gie data`` parser with one subparser per registered subcommand."""
    parser = _Parser(
        prog="ssl4gie data", description="make synthetic datasets, index folders, look at SSL views"
    )
    subparsers = parser.add_subparsers(dest="subcommand", required=True, metavar="<subcommand>")
    for command in _SUBCOMMANDS:
        subparser = subparsers.add_parser(
            command.name, help=command.summary, description=command.summary
        )
        for flags, options in command.arguments:
            subparser.add_argument(*flags, **options)
        subparser.set_defaults(run=command.run)
    return parser


def main(argv: list[str]) -> int:
    """Run ``ssl4gie data`` with ``argv``; return the exit code."""
    args = build_parser().parse_args(argv)
    return args.run(args)
