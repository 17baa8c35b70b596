"""The ``ssl4gie data`` command group: one subcommand per decorated function.

A subcommand is a function ``(args: argparse.Namespace) -> int`` registered with
``_subcommand`` (from :func:`ssl4gie.cli._args.subcommand_registry`), which also declares its
options (``_arg(...)``, as for ``add_argument``). Heavy imports happen inside the function, so
``--help`` stays fast. Usage errors become :class:`~ssl4gie.errors.InputError`: one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse

from ssl4gie.cli._args import _arg, _Parser, build_group_parser, subcommand_registry
from ssl4gie.errors import InputError

__all__ = ["_Parser", "build_parser", "main"]  # _Parser: also used by cli/demo.py

_SUBCOMMANDS, _subcommand = subcommand_registry()


@_subcommand(
    "synth",
    "write a synthetic endoscopy dataset in a real dataset's on-disk layout",
    _arg(
        "--layout",
        required=True,
        help="hyperkvasir-unlabeled, hyperkvasir-labeled, kvasir-seg, cvc-clinicdb, c3vd "
        "or imagefolder (layouts as in docs/datasets.md)",
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


_LAYOUT_HELP = (
    "folder (any images), hyperkvasir-unlabeled, hyperkvasir-labeled, kvasir-seg, cvc-clinicdb, "
    "c3vd, imagefolder, acdc, lung or video"
)


@_subcommand(
    "index",
    "scan a folder of images and videos once, cache the index, list videos and unreadable files",
    _arg("root", help="folder to scan (recursively)"),
    _arg("--cache-dir", default=None, help="where the index goes (default ~/.cache/ssl4gie/index)"),
    _arg("--fps", type=float, default=None, help="video frames sampled per second (default 1)"),
    _arg("--every", type=int, default=None, help="sample every n-th video frame instead"),
    _arg(
        "--drop-near-duplicates",
        action="store_true",
        help="leave out video frames within 0.45 (scene descriptors) of the last one kept",
    ),
    _arg("--quiet", action="store_true", help="no progress bar"),
)
def index(args: argparse.Namespace) -> int:
    """Build (or refresh) the cached indexes of a folder and say what they found."""
    from pathlib import Path

    from ssl4gie._io import check_writable
    from ssl4gie.data.index import build_index, default_cache_dir
    from ssl4gie.data.video import build_video_index, check_sampling

    check_sampling(args.fps, args.every)
    if not Path(args.root).is_dir():
        raise InputError(f"folder {args.root} does not exist; give the folder of images to index")
    check_writable(args.cache_dir or default_cache_dir(), "--cache-dir")
    found = build_index(args.root, args.cache_dir, progress=not args.quiet)
    videos = build_video_index(
        args.root, args.fps, args.every, args.drop_near_duplicates, cache_dir=args.cache_dir,
        progress=not args.quiet,
    )  # fmt: skip
    if found.files or found.bad_files or not (videos.videos or videos.bad_videos):
        print(f"{len(found.files)} readable images under {found.root}; index at {found.cache_path}")
    if found.bad_files:
        print(f"{len(found.bad_files)} unreadable files skipped; list at {found.bad_list_path}")
    for video in videos.videos:
        shape = f"{video.codec} {video.width}x{video.height}, {video.seconds:.1f} s"
        print(f"{video.name}: {len(video.pts)} frames ({shape})")
    if videos.videos:
        print(
            f"{videos.frames()} frames ({videos.sampling}) from {len(videos.videos)} video(s) "
            f"under {videos.root}; index at {videos.cache_path}"
        )
    if videos.bad_videos:
        bad = len(videos.bad_videos)
        print(f"{bad} unreadable video(s) skipped; list at {videos.bad_list_path}")
    return 0


@_subcommand(
    "optimize",
    "write a dataset as streaming shards (litdata) to a folder or s3://bucket/prefix",
    _arg("--layout", required=True, help=_LAYOUT_HELP),
    _arg("--root", required=True, help="dataset folder"),
    _arg("--out", required=True, help="new folder, or s3://bucket/prefix (AWS_* variables)"),
    _arg("--shard-size", default="64MB", help="most bytes per shard, default 64MB"),
    _arg("--workers", type=int, default=None, help="writer processes (default: the cores)"),
    _arg("--quiet", action="store_true", help="no progress bar"),
)
def optimize(args: argparse.Namespace) -> int:
    """Write the shards (resuming an interrupted run) and print the summary."""
    from ssl4gie.data.datamodules import Source, check_source, default_num_workers, open_dataset
    from ssl4gie.data.streaming import optimize_shards

    source = check_source(Source(args.layout, args.root))
    reader = open_dataset(source, None)
    workers = default_num_workers() if args.workers is None else args.workers
    about = {"layout": args.layout, "root": str(args.root)}
    summary = optimize_shards(
        reader, args.out, args.shard_size, workers, progress=not args.quiet, about=about
    )
    print(summary)
    return 0


RECIPES = ("byol", "barlow_twins", "mocov3", "simclr", "dino", "swav", "mae", "simmim")


@_subcommand(
    "show-views",
    "save a PNG of a few images and the SSL views a recipe makes of them",
    _arg("--recipe", required=True, help=", ".join(RECIPES)),
    _arg("--root", required=True, help="dataset folder"),
    _arg("--layout", default="folder", help=_LAYOUT_HELP + " (default folder)"),
    _arg("--out", required=True, help="PNG to write"),
    _arg("--n", type=int, default=4, help="number of images (rows), default 4"),
    _arg(
        "--max-size",
        type=int,
        default=512,
        help="longer side the frames are loaded at, aspect kept (as pretraining), default 512",
    ),
    _arg("--view-size", type=int, default=None, help="override the recipe's crop size"),
    _arg(
        "--fov",
        action="store_true",
        help="endoscopy: crop inside the scene (field of view minus burnt-in UI boxes and text) "
        "and show the scene mask (outside it tinted blue)",
    ),
    _arg("--seed", type=int, default=0, help="seed for picking images and views"),
)
def show_views(args: argparse.Namespace) -> int:
    """Load ``n`` images, make the recipe's views on the CPU and save them as a grid."""
    import torch

    from ssl4gie.data.datamodules import AspectTrueFrames, Source, open_dataset
    from ssl4gie.errors import check_choice
    from ssl4gie.transforms import RECIPES, MultiCrop, recipe_by_name
    from ssl4gie.viz import denormalise, save_grid

    check_choice("recipe", args.recipe, RECIPES)
    if args.n < 1:
        raise InputError(f"--n must be >= 1, got {args.n}")
    dataset = AspectTrueFrames(open_dataset(Source(args.layout, args.root), None), args.max_size)
    generator = torch.Generator().manual_seed(args.seed)
    picks = torch.randperm(len(dataset), generator=generator)[: args.n].tolist()
    samples = [dataset[i] for i in picks]
    images = torch.stack([sample["image"] for sample in samples])
    regions = torch.stack([sample["region"] for sample in samples])
    overrides: dict = {"fov": args.fov}
    if args.view_size and RECIPES[args.recipe] is MultiCrop:  # local crops keep DINO's 96/224
        overrides |= {"global_size": args.view_size, "local_size": args.view_size * 96 // 224}
    elif args.view_size:
        overrides["size"] = args.view_size
    recipe = recipe_by_name(args.recipe, **overrides)
    outputs = recipe(images, regions, generator=generator)  # views, then scene masks (MAE, SimMIM)
    views = [out[:, 0].float() if out.dtype == torch.bool else denormalise(out) for out in outputs]
    rows = [[images[r]] + [view[r] for view in views] for r in range(len(picks))]
    titles = ["image", *recipe.view_names()]
    if args.fov:
        tinted = _scene_tint(images)
        rows = [[row[0], tinted[r], *row[1:]] for r, row in enumerate(rows)]
        titles.insert(1, "scene mask")
    save_grid(rows, args.out, titles)
    print(f"saved {len(picks)} images and {len(views)} {args.recipe} views each to {args.out}")
    return 0


def _scene_tint(images):
    """uint8 ``[B, 3, H, W]`` -> float ``[B, 3, H, W]`` with what is not scene
    (:func:`~ssl4gie.transforms.fov.scene_mask`: border, burnt-in overlays) tinted blue."""
    import torch

    from ssl4gie.transforms import scene_mask

    unit = images.float() / 255
    blue = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)
    return torch.where(scene_mask(images), unit, 0.4 * unit + 0.6 * blue)


@_subcommand(
    "duplicates",
    "group near-duplicate frames (one scene, one video) as the leak-aware split does",
    _arg("root", help="dataset folder"),
    _arg("--layout", default="folder", help=_LAYOUT_HELP + " (default folder)"),
    _arg("--out", required=True, help="CSV to write: one row 'path,group' per image"),
    _arg("--png", default=None, help="PNG: a row per largest group (8), its first 8 images"),
    _arg("--threshold", type=float, default=None, help="descriptor distance (default 0.45)"),
    _arg(
        "--sequences-from-names",
        action="store_true",
        help="also join numbered frames of one video, e.g. seq_3_7.jpg and seq_3_8.jpg",
    ),
    _arg("--size", type=int, default=128, help="size the images are loaded at, default 128"),
    _arg("--quiet", action="store_true", help="no progress bar"),
)
def duplicates(args: argparse.Namespace) -> int:
    """Describe every image, group them, write the CSV (and the contact sheet)."""
    import csv
    from pathlib import Path

    import numpy as np
    from tqdm.auto import tqdm

    from ssl4gie._io import atomic_file
    from ssl4gie.data.datamodules import Source, open_dataset
    from ssl4gie.data.near_duplicates import (
        DEFAULT_THRESHOLD,
        _check_threshold,
        name_sequences,
        near_duplicate_groups,
        scene_descriptors,
    )

    if not Path(args.root).is_dir():
        raise InputError(f"folder {args.root} does not exist; give the dataset folder to group")
    threshold = _check_threshold(DEFAULT_THRESHOLD if args.threshold is None else args.threshold)
    dataset = open_dataset(Source(args.layout, args.root), args.size)
    paths = [str(path) for path in dataset.images]
    bar = tqdm(range(len(dataset)), desc="describing", unit="image", disable=args.quiet)
    descriptors = scene_descriptors(dataset[i]["image"] for i in bar)
    known = getattr(dataset, "groups", None)
    if args.sequences_from_names and known is not None:
        raise InputError(
            f"layout {args.layout!r} already groups frames by their sequence or video; drop "
            "--sequences-from-names"
        )
    if args.sequences_from_names:
        known = name_sequences(paths)
    groups = near_duplicate_groups(descriptors, threshold, known_groups=known)
    with atomic_file(args.out, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "group"])
        writer.writerows(zip(paths, groups.tolist(), strict=True))
    sizes = np.bincount(groups)
    print(
        f"{len(paths)} images in {len(sizes)} groups (largest {sizes.max()}, "
        f"{int((sizes > 1).sum())} with more than one image); wrote {args.out}"
    )
    if args.png:
        _contact_sheet(dataset, groups, args.png)
        print(f"saved the largest groups to {args.png}")
    return 0


def _contact_sheet(dataset, groups, path: str, rows: int = 8, columns: int = 8) -> None:
    """One row per largest group (up to ``rows``), its first ``columns`` images."""
    import numpy as np

    from ssl4gie.viz import save_grid

    largest = np.argsort(-np.bincount(groups), kind="stable")[:rows]
    grid = [
        [dataset[int(i)]["image"] for i in np.flatnonzero(groups == group)[:columns]]
        for group in largest
    ]
    save_grid(grid, path)


def build_parser() -> argparse.ArgumentParser:
    """The ``ssl4gie data`` parser with one subparser per registered subcommand."""
    return build_group_parser(
        "ssl4gie data", "make synthetic datasets, index folders, look at SSL views", _SUBCOMMANDS
    )


def main(argv: list[str]) -> int:
    """Run ``ssl4gie data`` with ``argv``; return the exit code."""
    args = build_parser().parse_args(argv)
    return args.run(args)
