"""The ``ssl4gie`` command: one entry point, one module per command group.

Each group is a function ``(argv: list[str]) -> int`` named ``"module:function"``, imported
only when used, so ``ssl4gie --help`` answers without importing torch.
:class:`~ssl4gie.errors.InputError` from any group becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

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
    "usage: ssl4gie <command> [options]\n\ncommands:\n"
    + "\n".join(f"  {name:<10} {summary}" for name, (_, summary) in GROUPS.items())
    + "\n\nRun 'ssl4gie <command> --help' for a command's options."
)


def main(argv: list[str] | None = None) -> int:
    """Run ``ssl4gie`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
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
    module_name, function_name = GROUPS[group][0].split(":")
    run = getattr(importlib.import_module(module_name), function_name)
    try:
        return run(argv[1:])
    except InputError as err:
        print(f"ssl4gie {group}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
