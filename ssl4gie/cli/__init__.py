"""The ``ssl4gie`` command: one entry point, one module per command group.

Each group is a function ``(argv: list[str]) -> int`` named ``"module:function"``, imported
only when used, so ``ssl4gie --help`` answers without importing torch.
:class:`~ssl4gie.errors.InputError` from any group becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from ssl4gie.errors import InputError, did_you_mean

GROUPS = {
    "pretrain": ("ssl4gie.cli.lightning:pretrain", "self-supervised pretraining (LightningCLI)"),
    "finetune": ("ssl4gie.cli.lightning:finetune", "fine-tune a backbone on a task (LightningCLI)"),
    "data": ("ssl4gie.cli.data:main", "make synthetic datasets, index folders, look at SSL views"),
    "zoo": ("ssl4gie.cli.zoo:main", "list, export, convert and publish pretrained backbones"),
    "study": ("ssl4gie.cli.study:main", "rerun a seed study on your data: grid, tables, figures"),
    "demo": ("ssl4gie.cli.demo:main", "the main job end to end on synthetic data (CPU, minutes)"),
}

USAGE = (
    "usage: ssl4gie [--verbose] <command> [options]\n\ncommands:\n"
    + "\n".join(f"  {name:<10} {summary}" for name, (_, summary) in GROUPS.items())
    + "\n\nRun 'ssl4gie <command> --help' for a command's options; --verbose also shows the"
    " library notices hidden by default."
)


def main(argv: list[str] | None = None) -> int:
    """Run ``ssl4gie`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = argv[:1] == ["--verbose"]  # else library notices are filtered (cli/_quiet.py)
    argv = argv[verbose:]
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] == "--version":
        from ssl4gie import __version__

        print(f"ssl4gie {__version__}")
        return 0
    group = argv[0]
    if group not in GROUPS:
        print(
            f"ssl4gie: error: unknown command {group!r}{did_you_mean(group, GROUPS)}; "
            f"run 'ssl4gie --help' for the list",
            file=sys.stderr,
        )
        return 2
    if not verbose:
        from ssl4gie.cli._quiet import quiet

        quiet()
    module_name, function_name = GROUPS[group][0].split(":")
    run = getattr(importlib.import_module(module_name), function_name)
    try:
        with _sigterm_as_exit(group not in LIGHTNING_GROUPS), _one_line_warnings(group):
            return run(argv[1:])
    except InputError as err:
        print(f"ssl4gie {group}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ssl4gie {group}: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _one_line_warnings(group: str) -> Iterator[None]:
    """ssl4gie's own warnings as ``ssl4gie <group>: warning: <message>`` (their message names
    the file); a library's keep Python's format, which names its source line."""
    package = str(Path(__file__).parents[1])
    python_format = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None) -> str:
        if str(filename).startswith(package):
            return f"ssl4gie {group}: warning: {message}\n"
        return python_format(message, category, filename, lineno, line)

    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = python_format


LIGHTNING_GROUPS = ("pretrain", "finetune")
"""Lightning stops these itself on SIGTERM at the end of a step, so ``last.ckpt`` stays whole."""


@contextlib.contextmanager
def _sigterm_as_exit(active: bool) -> Iterator[None]:
    """While ``active``, SIGTERM raises ``SystemExit(143)`` so that atomic writes remove their
    temporaries (:mod:`ssl4gie._io`) as for Ctrl-C; the previous handler comes back after."""

    def terminate(signum: int, frame) -> None:
        raise SystemExit(128 + signum)

    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
