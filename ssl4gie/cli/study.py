"""``ssl4gie study <name> --config FILE``: rerun a seed study on your data and backbones.

The config is checked whole before any training (every problem listed, exit code 2). Cells
already finished are skipped, so a stopped study resumes where it was; a failed cell is reported
(exit code 1) without losing the others. ``--shard i/n`` runs every n-th cell, e.g. one shard
per GPU (``CUDA_VISIBLE_DEVICES=i``) into the same ``out`` folder; ``--report-only`` then renders
the report from all shards' cells.
"""

from __future__ import annotations

import functools

from ssl4gie.cli._args import _Parser
from ssl4gie.cli.lightning import CONFIGS, shipped_config


def build_parser(names: list[str]) -> _Parser:
    parser = _Parser(prog="ssl4gie study", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=names, metavar="name", help=", ".join(names))
    parser.add_argument(
        "--config",
        default=None,
        help="study YAML or shipped name such as studies/synthetic/dvme "
        "(default: the shipped configs/studies/<name>.yaml)",
    )
    parser.add_argument("--out", default=None, help="study folder (default: the config's out)")
    parser.add_argument("--shard", default="0/1", help="run cells k with k mod n == i (i/n)")
    run = parser.add_mutually_exclusive_group()
    run.add_argument("--check", action="store_true", help="check the config, list the cells")
    run.add_argument("--report-only", action="store_true", help="only render the report")
    return parser


def main(argv: list[str]) -> int:
    from ssl4gie.studies import STUDIES, load_config, render_report, run_study
    from ssl4gie.studies.cells import expand

    args = build_parser(list(STUDIES)).parse_args(argv)
    path = shipped_config(args.config) if args.config else CONFIGS / "studies" / f"{args.name}.yaml"
    config = load_config(path, args.name)
    if args.out:
        config.out = args.out
    if args.check:
        cells = expand(config)
        print(f"{args.name}: config OK, {len(cells)} cells into {config.out_dir}")
        print("\n".join(f"  {cell.id}" for cell in cells))
        return 0
    if args.report_only:
        print(f"report: {render_report(config)}")
        return 0
    outcome = run_study(config, args.shard, echo=functools.partial(print, flush=True))
    print(
        f"{len(outcome.ran)} cells run, {len(outcome.skipped)} finished before, "
        f"{len(outcome.failed)} failed; report: {outcome.report}"
    )
    for cell, reason in outcome.failed.items():
        print(f"  failed: {cell}: {reason}")
    return 1 if outcome.failed else 0
