"""The ``ssl4gie zoo`` command group: list, inspect, export, convert and publish backbones.

Subcommands are registered as in :mod:`ssl4gie.cli.data`. ``list`` and ``info`` read the cards
only (no torch import); ``export``, ``convert`` and ``publish`` import the heavy parts inside.
"""

from __future__ import annotations

import argparse

from ssl4gie.cli._args import _arg, build_group_parser, subcommand_registry
from ssl4gie.errors import InputError

_SUBCOMMANDS, _subcommand = subcommand_registry()
_INDEX = _arg(
    "--index",
    action="append",
    default=[],
    help="also read a zoo index: a .toml/.json file or hf-hub:org/repo (repeatable)",
)


def _load_indexes(sources: list[str]) -> None:
    from ssl4gie.zoo.registry import load_index

    for source in sources:
        load_index(source, overwrite=True)


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Rows as left-aligned columns under ``header`` (plain text, no colours)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, tuple("-" * width for width in widths), *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


@_subcommand(
    "list",
    "print the zoo: name, architecture, method, data, licence, availability, source",
    _arg("pattern", nargs="?", default=None, help="shell pattern, e.g. 'vitb16-*-hk'"),
    _arg("--available", action="store_true", help="only entries whose weights exist"),
    _INDEX,
)
def list_(args: argparse.Namespace) -> int:
    """Print the table of matching zoo entries."""
    from ssl4gie.zoo.readme import COLUMNS, zoo_rows
    from ssl4gie.zoo.registry import list_backbones

    _load_indexes(args.index)
    names = list_backbones(args.pattern, available=True if args.available else None)
    if not names:
        raise InputError(f"no zoo entry matches {args.pattern!r}; run 'ssl4gie zoo list'")
    print(format_table(COLUMNS, zoo_rows(names)))
    return 0


@_subcommand(
    "info",
    "print every field of a zoo entry's card",
    _arg("name", help="zoo name, e.g. resnet50-barlow-hk"),
    _INDEX,
)
def info(args: argparse.Namespace) -> int:
    """Print the card as ``field: value`` lines."""
    from ssl4gie.zoo.registry import backbone_card

    _load_indexes(args.index)
    card = backbone_card(args.name)
    fields = {**card.to_dict(), "available": card.available, "source": card.source_kind}
    print(format_table(("field", "value"), [(key, str(value)) for key, value in fields.items()]))
    return 0


_EXPORT_OPTIONS = (
    _arg("out_dir", help="folder to create (new or empty)"),
    _arg("--name", default=None, help="zoo name for the card, e.g. resnet50-dino-hk"),
    _arg("--architecture", default=None, help="timm name, if it cannot be detected"),
)


def _export(source: str, args: argparse.Namespace, checkpoint_format: str | None) -> int:
    from ssl4gie.zoo.convert import convert_file, summarize_dropped
    from ssl4gie.zoo.export import export_backbone
    from ssl4gie.zoo.registry import backbone_card, is_zoo_name

    card = backbone_card(args.name) if args.name and is_zoo_name(args.name) else None
    if card is not None and card.source_kind == "manual" and card.sha256:
        _check_release_file(source, card)
    architecture = args.architecture or (card.architecture if card else None)
    converted = convert_file(source, checkpoint_format, architecture)
    if card is not None and not args.architecture:
        converted.model_args = {**converted.model_args, **card.model_args}
    out_dir = export_backbone(converted, args.out_dir, name=args.name)
    print(
        f"wrote {converted.architecture} weights ({converted.source_format}) to {out_dir}; "
        f"left out: {summarize_dropped(converted.dropped)}"
    )
    return 0


def _check_release_file(source: str, card) -> None:
    """The manual download must be the file the card pins (sha256), before anything is read."""
    from pathlib import Path

    from ssl4gie.zoo.hub import sha256_of

    if Path(source).is_file() and (found := sha256_of(source)) != card.sha256:
        raise InputError(
            f"{source} has sha256 {found}, but {card.name!r} pins {card.sha256} "
            f"({card.filename or 'the release file'}); download it again from {card.origin_url}"
        )


@_subcommand(
    "export",
    "write a Hub-ready folder (model.safetensors, config.json, README.md) from a checkpoint",
    _arg("source", help="Lightning .ckpt from ssl4gie pretraining, or a released checkpoint"),
    *_EXPORT_OPTIONS,
    _arg("--format", default=None, help="checkpoint format (default: detected)"),
)
def export(args: argparse.Namespace) -> int:
    """Export a checkpoint (format detected unless given)."""
    return _export(args.source, args, args.format)


@_subcommand(
    "convert",
    "convert a released checkpoint (SSL4GIE, MoCo v3, MAE, DINO, EndoViT, GastroNet, ...) to a "
    "folder; --name with a zoo name takes its card (architecture, preprocessing, licence)",
    _arg(
        "--format",
        required=True,
        help="ssl4gie-mocov3, ssl4gie-barlow, ssl4gie-mae, mocov3, barlowtwins, mae, dino, "
        "swav, torchvision, endovit, surgenet, gastronet, selfsupsurg or endofm",
    ),
    _arg("source", help="the released checkpoint file"),
    *_EXPORT_OPTIONS,
)
def convert(args: argparse.Namespace) -> int:
    """Convert a checkpoint in a named released format."""
    from ssl4gie.errors import check_choice
    from ssl4gie.zoo.convert import FORMATS

    return _export(args.source, args, check_choice("format", args.format, FORMATS))


@_subcommand(
    "publish",
    "upload an export folder to the Hugging Face Hub and print the commit URL",
    _arg("out_dir", help="folder written by 'ssl4gie zoo export'"),
    _arg("repo_id", help="org/name on the Hub"),
    _arg("--private", action="store_true", help="create the repo private"),
    _arg("--revision", default=None, help="branch to commit to (created if missing)"),
    _arg("--dry-run", action="store_true", help="list the files that would be sent; send none"),
    _arg(
        "--i-have-permission",
        dest="permission",
        default=None,
        metavar="REASON",
        help="publish weights whose licence forbids sharing them (no-derivatives, data-use "
        "agreement, unknown): who allowed it and how; recorded in the model card",
    ),
)
def publish(args: argparse.Namespace) -> int:
    """Publish (or with --dry-run list) the folder's files; refuse unshareable weights."""
    from ssl4gie.zoo.hub import publish as publish_folder

    result = publish_folder(
        args.out_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        dry_run=args.dry_run,
        permission=args.permission,
    )
    if not args.dry_run:
        print(result)
        return 0
    print(f"would send {len(result)} files to {args.repo_id}:")
    for operation in result:
        info = operation.upload_info
        print(f"  {operation.path_in_repo}  {info.size} bytes  sha256 {info.sha256.hex()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``ssl4gie zoo`` parser with one subparser per registered subcommand."""
    return build_group_parser(
        "ssl4gie zoo", "list, export, convert and publish pretrained backbones", _SUBCOMMANDS
    )


def main(argv: list[str]) -> int:
    """Run ``ssl4gie zoo`` with ``argv``; return the exit code."""
    args = build_parser().parse_args(argv)
    return args.run(args)
