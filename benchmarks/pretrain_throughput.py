"""Pretraining throughput with the data pipeline included, from JPEG files to optimiser step:
ssl4gie with the aspect-true input and with the old squashed one, against the plain-PyTorch
way and lightly, on the same synthetic frames.

    python benchmarks/pretrain_throughput.py [--gpu] [--methods ...] [--frames 256] [--json out]

- ``ours``: ``Trainer.fit`` on a ``PretrainDataModule`` with the aspect-true input (``fit``:
  frames fitted to a canvas of 16/7 the view size, 512 for 224 px views; workers decode and
  resize; on a GPU the JPEGs are decoded there, ``decode_on_device``), views on the device
  inside each frame's region, the method's step with the scale's fast path;
- ``ours squash``: the same with the old input, every frame squashed to 8/7 the view size (256
  for 224); ``fidelity cost``: how much slower the aspect-true input is (1 - ours / squash);
- ``plain``: the same method's model and loss in a plain loop, fed by a DataLoader whose workers
  decode with PIL and run torchvision's two-view transforms (the seed studies' way);
- ``lightly``: lightly's model, loss and transforms (Barlow Twins, SimCLR, BYOL).

All three use the same number of loader workers, batch size, precision and frames (HyperKvasir
sized, repeated to fill the steps). Images/s over the steps after warm-up; the epoch time is
the HyperKvasir-unlabelled epoch (99,417 frames) at that rate. Methods: the two-view ones on
CPU, all of them with ``--gpu`` (``plain`` for the two-view ones only); on CPU the ResNet only.
Warm-up + 2 and 3x the steps of the other benchmarks: the workers prefetch two batches each.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import _baselines
import _common
import torch

from ssl4gie.data.datamodules import PretrainDataModule, Source
from ssl4gie.data.synthetic import synthesize
from ssl4gie.errors import InputError
from ssl4gie.methods import METHODS

TWO_VIEW_METHODS = ("barlow_twins", "simclr", "byol", "mocov3")
METHODS_HELP = "default: the two-view methods on CPU, every method with --gpu"
COLUMNS: list[_common.Column] = [
    ("method", "method", "{}"),
    ("backbone", "backbone", "{}"),
    ("ours_images_per_s", "ours images/s", "{:.1f}"),
    ("squash_images_per_s", "ours squash images/s", "{:.1f}"),
    ("fidelity_cost", "fidelity cost", "{:+.1%}"),
    ("plain_images_per_s", "plain images/s", "{:.1f}"),
    ("lightly_images_per_s", "lightly images/s", "{:.1f}"),
    ("speedup_vs_plain", "x plain", "{:.2f}"),
    ("speedup_vs_lightly", "x lightly", "{:.2f}"),
    ("epoch_s", "HK epoch s", "{:.0f}"),
    ("error", "not run", "{}"),
]


def ours(name: str, backbone: str, root: Path, repeats: int, scale, device, options) -> float:
    """Images/s of ssl4gie's ``Trainer.fit`` on the frames under ``root`` (``repeats`` times)
    with the input ``options`` (:func:`_common.pretrain_inputs`)."""
    method = _common.build_method(name, backbone, scale, **_common.fast_path(backbone, scale))
    data = PretrainDataModule(
        [Source("hyperkvasir-unlabeled", str(root))] * repeats,
        **options,
        batch_size=scale.batch,
        num_workers=scale.workers,
        decode_on_device=device.type == "cuda",
    )
    clock = _common.StepClock(device, {})
    trainer = _common.trainer(device, scale, scale.warmup + scale.steps, callbacks=[clock])
    trainer.fit(method, datamodule=data)
    return clock.images_per_second(scale.batch, scale.warmup)


def plain(name: str, backbone: str, paths: list[Path], scale, device) -> float:
    """Images/s of the method's model in a plain loop on torchvision's CPU views."""
    method = _common.build_method(name, backbone, scale).to(device)
    views = _baselines.PILViews(paths, _baselines.torchvision_two_views(scale.size))
    loader = _baselines.view_loader(views, scale.batch, scale.workers, device)
    optimizer = _baselines.plain_optimizer(method)
    step = _baselines.plain_step(method, optimizer, _common.autocast(device, scale))
    return _baselines.loop_images_per_second(loader, step, scale.warmup, scale.steps, device)


def lightly(name: str, backbone: str, paths: list[Path], scale, device) -> float | None:
    """Images/s of lightly's model and transforms in a plain loop (None: no lightly version)."""
    if name not in _baselines.LIGHTLY_METHODS:
        return None
    reference = _common.build_method(name, backbone, scale)
    model = _baselines.LightlyModel(name, reference).to(device)
    del reference
    views = _baselines.PILViews(paths, _baselines.lightly_transform(name, scale.size))
    loader = _baselines.view_loader(views, scale.batch, scale.workers, device)
    step = _baselines.lightly_step(model, model_kind(backbone), _common.autocast(device, scale))
    return _baselines.loop_images_per_second(loader, step, scale.warmup, scale.steps, device)


def model_kind(backbone: str) -> str:
    """``"vit"`` or ``"cnn"``, as the methods' recipes are chosen."""
    return "vit" if backbone.startswith("vit") else "cnn"


def speedups(row: dict) -> dict[str, float | None]:
    """ours/plain, ours/lightly, the fidelity cost and the HyperKvasir epoch time of a row."""
    ours_rate = row["ours_images_per_s"]
    return {
        "fidelity_cost": 1 - ours_rate / row["squash_images_per_s"],
        "speedup_vs_plain": _common.ratio(ours_rate, row["plain_images_per_s"]),
        "speedup_vs_lightly": _common.ratio(ours_rate, row["lightly_images_per_s"]),
        "epoch_s": _common.HYPERKVASIR_UNLABELLED / ours_rate,
    }


def measure(name: str, backbone: str, root: Path, repeats: int, scale, device) -> dict:
    """One row: ours (both inputs), plain (two-view methods) and lightly images/s, and the
    ratios."""
    row: dict[str, Any] = {"method": name, "backbone": backbone, "batch": scale.batch}
    fit, squash = _common.pretrain_inputs(scale.size).values()
    try:
        row["ours_images_per_s"] = ours(name, backbone, root, repeats, scale, device, fit)
    except InputError as err:  # e.g. MAE on a ResNet
        return row | {"error": str(err).split(";")[0]}
    row["squash_images_per_s"] = ours(name, backbone, root, repeats, scale, device, squash)
    paths = sorted(root.rglob("*.jpg")) * repeats
    two_views = name in TWO_VIEW_METHODS
    row["plain_images_per_s"] = plain(name, backbone, paths, scale, device) if two_views else None
    row["lightly_images_per_s"] = lightly(name, backbone, paths, scale, device)
    return row | speedups(row)


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), help=METHODS_HELP)
    parser.add_argument("--frames", type=int, default=256, help="synthetic frames to write")
    args = parser.parse_args()
    scale, device = _common.setup(args)
    scale = _common.pipeline_scale(scale)
    if scale.name == "cpu" and not args.backbones:
        scale = replace(scale, backbones=scale.backbones[:1])  # the CNN: minutes, not more
    methods = args.methods or (sorted(METHODS) if scale.name == "gpu" else TWO_VIEW_METHODS)
    needed = scale.batch * (scale.warmup + scale.steps)
    frames = min(args.frames, needed)
    repeats = -(-needed // frames)  # ceil: the loaders must not run out mid-measurement
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize(
            "hyperkvasir-unlabeled", Path(tmp) / "hk", frames, scale.frame_size, progress=False
        )
        for backbone in scale.backbones:
            for name in methods:
                rows.append(measure(name, backbone, root, repeats, scale, device))
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    fit_name, squash_name = _common.pretrain_inputs(scale.size)
    notes = [
        f"{scale.workers} loader worker(s) for every pipeline; {frames} synthetic JPEGs in "
        f"HyperKvasir's layout ({scale.frame_size * 5 // 4}x{scale.frame_size} and square), "
        f"repeated {repeats}x",
        f"ours: the aspect-true input ({fit_name}); ours squash: the old one ({squash_name}); "
        "plain: the two-view methods (torchvision's two-view transforms); "
        "HK epoch s: 99,417 frames at the ours images/s",
    ]
    notes += [] if _baselines.HAVE_LIGHTLY else [_baselines.LIGHTLY_MISSING]
    title = "Pretraining throughput, data pipeline included"
    _common.finish(
        "pretrain_throughput", title, args, scale, device, rows, COLUMNS, notes, doc=__doc__
    )


if __name__ == "__main__":
    main()
