"""``ssl4gie demo``: the main job end to end on synthetic data, on a CPU in minutes.

Each step writes under ``--out`` (default ``runs/demo``) and prints what it measured; a step
whose output already exists is reused, so a second run is quick. The steps:

1. ``data``: synthetic Hyperkvasir-unlabelled, HyperKvasir-labelled and Kvasir-SEG in their
   real on-disk layouts (``ssl4gie data synth``), indexed once.
2. ``views``: a PNG of frames and the Barlow Twins views made of them on the device.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ssl4gie.cli.data import _Parser

PRESETS = {  # frames per dataset and the frame size
    "smoke": {"unlabeled": 16, "labeled": 46, "kvasir_seg": 8, "size": 64},
    "quick": {"unlabeled": 400, "labeled": 460, "kvasir_seg": 200, "size": 128},
    "full": {"unlabeled": 4000, "labeled": 2300, "kvasir_seg": 1000, "size": 256},
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ssl4gie demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--full", action="store_true", help="bigger data and runs, for a GPU")
    sizes.add_argument("--smoke", action="store_true", help="tiny data and runs (tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and training")
    return parser


def make_data(out: Path, sizes: dict[str, int], seed: int) -> dict[str, Path]:
    """Write (or reuse) the synthetic datasets; return layout -> root."""
    from ssl4gie.data.index import build_index
    from ssl4gie.data.synthetic import synthesize

    wanted = {
        "hyperkvasir-unlabeled": sizes["unlabeled"],
        "hyperkvasir-labeled": sizes["labeled"],
        "kvasir-seg": sizes["kvasir_seg"],
    }
    roots = {}
    for layout, n in wanted.items():
        root = out / "data" / layout
        if not root.exists():
            synthesize(layout, root, n=n, size=sizes["size"], seed=seed)
        build_index(root, progress=False)
        roots[layout] = root
    return roots


def save_views(out: Path, root: Path, size: int, seed: int) -> Path:
    """A PNG of four frames and their Barlow Twins views."""
    import torch

    from ssl4gie.data.datasets import HyperKvasirUnlabeled
    from ssl4gie.transforms import TwoViews
    from ssl4gie.viz import denormalise, save_grid

    frames = HyperKvasirUnlabeled(root, size=size)
    images = torch.stack([frames[i]["image"] for i in range(4)])
    generator = torch.Generator().manual_seed(seed)
    recipe = TwoViews.barlow_twins(size=size, fov=True)
    views = [denormalise(v) for v in recipe(images, generator=generator)]
    rows = [[images[r], views[0][r], views[1][r]] for r in range(len(images))]
    return save_grid(rows, out / "views.png", ["frame", *recipe.view_names()])


def main(argv: list[str]) -> int:
    """Run the demo's steps and print a summary; return the exit code."""
    args = build_parser().parse_args(argv)
    sizes = PRESETS["full" if args.full else "smoke" if args.smoke else "quick"]
    out = Path(args.out)
    timings: list[tuple[str, float, str]] = []

    start = time.perf_counter()
    roots = make_data(out, sizes, args.seed)
    timings.append(("data", time.perf_counter() - start, str(out / "data")))

    start = time.perf_counter()
    views = save_views(out, roots["hyperkvasir-unlabeled"], sizes["size"], args.seed)
    timings.append(("views", time.perf_counter() - start, str(views)))

    print(f"\n{'step':<8} {'seconds':>8}  output")
    for step, seconds, written in timings:
        print(f"{step:<8} {seconds:>8.1f}  {written}")
    return 0
