"""Input pipeline throughput alone (no model), the aspect-true input beside the old squashed
one: ssl4gie's decode+resize workers and on-device views against the usual torchvision CPU
pipeline and lightly's, on the same synthetic JPEGs (HyperKvasir-sized 720x576 and
Kvasir-SEG/C3VD-sized 1350x1080 frames, 224 px Barlow Twins views by default).

    python benchmarks/input_pipeline.py [--gpu] [--frames 128] [--frame-sizes 576 1080]
        [--workers N] [--json out]

Inputs (``PretrainDataModule``): ``fit 512`` (aspect-true: longer side 512 = 16/7 of the view,
on a 512 canvas with the frame's region) and ``squash 256`` (the old input: every frame squashed
to 256x256 = 8/7 of the view). Pipelines: ``decode+resize`` (what the loader workers do),
``+ views`` (plus the two views made on the device), ``decode_on_device + views`` (GPU only:
workers read bytes, nvjpeg decodes, the batch is resized there), ``torchvision`` (PIL decode
and torchvision's two-view transforms in the workers, on the original frame) and ``lightly``
(lightly's BYOL/Barlow Twins transforms in the workers). Ratios are against ``torchvision`` on
the same frames. On CPU the default is per core: no worker processes and one thread, every
pipeline in the main process, measured batch by batch in turn; with workers, one pass each
after warm-up batches.

Crops upsampled: the fraction of the views' crops at scale (0.08, 1) that hold fewer source
pixels than the view (crop side, the square root of its area in the pixels it is cut from,
below the view size), and the stricter count of crops with either side below it; from
``--crops`` (20,000) boxes of the library's crop sampler on each input's region, and of
torchvision's ``RandomResizedCrop.get_params`` on the original frame for the CPU pipelines.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import _baselines
import _common
import torch
from torch.utils.data import DataLoader

from ssl4gie.data.datamodules import PretrainDataModule, Source
from ssl4gie.data.decode import fit_to_canvas
from ssl4gie.data.synthetic import synthesize
from ssl4gie.transforms import TwoViews
from ssl4gie.transforms.ops import _Draw, sample_crop_boxes

COLUMNS: list[_common.Column] = [
    ("frames", "frames", "{}"),
    ("input", "input", "{}"),
    ("pipeline", "pipeline", "{}"),
    ("images_per_s", "images/s", "{:.1f}"),
    ("cores", "cores", "{}"),
    ("images_per_s_per_core", "images/s/core", "{:.1f}"),
    ("vs_torchvision", "x torchvision", "{:.2f}"),
    ("upsampled", "crops upsampled", "{:.1%}"),
    ("upsampled_side", "a side upsampled", "{:.1%}"),
]
CROP_SCALE, CROP_RATIO = (0.08, 1.0), (3 / 4, 4 / 3)  # torchvision's RandomResizedCrop defaults
Candidate = tuple[DataLoader, Callable[[Any], object]]


def upsampled(boxes: torch.Tensor, size: int) -> dict[str, float]:
    """Fractions of crop ``boxes`` ``[N, 4]`` (source pixels) upsampled to ``size``: with fewer
    pixels than the view (sqrt of the area < size), and with either side < size."""
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    fewer = (width * height).sqrt() < size
    side = torch.minimum(width, height) < size
    return {"upsampled": fewer.float().mean().item(), "upsampled_side": side.float().mean().item()}


def library_crops(region: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` boxes of ssl4gie's crop sampler (what every view recipe draws) in ``region``."""
    draw = _Draw(count, region.device, torch.Generator().manual_seed(0))
    return sample_crop_boxes(region.expand(count, 4), CROP_SCALE, CROP_RATIO, draw)


def torchvision_crops(height: int, width: int, count: int) -> torch.Tensor:
    """``count`` boxes of torchvision's ``RandomResizedCrop.get_params`` on a full frame."""
    from torchvision.transforms import RandomResizedCrop

    frame = torch.empty(3, height, width, dtype=torch.uint8)
    torch.manual_seed(0)
    boxes = []
    for _ in range(count):
        top, left, crop_h, crop_w = RandomResizedCrop.get_params(frame, CROP_SCALE, CROP_RATIO)
        boxes.append((left, top, left + crop_w, top + crop_h))
    return torch.tensor(boxes, dtype=torch.float32)


def input_region(options: dict[str, int | None], height: int, width: int) -> torch.Tensor:
    """The region an input gives a ``height`` x ``width`` frame, in the pixels views crop from:
    the squashed square, or the frame's part of the canvas (:func:`fit_to_canvas`)."""
    if options["max_size"] is None:
        return torch.tensor([0.0, 0.0, options["size"], options["size"]])
    return fit_to_canvas(torch.zeros(3, height, width, dtype=torch.uint8), options["max_size"])[1]


def crop_statistics(size: int, height: int, width: int, count: int) -> dict[str, dict[str, float]]:
    """Input name (and ``"original"``: torchvision on the full frame) -> :func:`upsampled` of
    ``count`` crops."""
    stats = {"original": upsampled(torchvision_crops(height, width, count), size)}
    for name, options in _common.pretrain_inputs(size).items():
        region = input_region(options, height, width)
        stats[name] = upsampled(library_crops(region, count), size)
    return stats


def candidates(root: Path, size: int, batch: int, workers: int, repeats: int, device):
    """Pipeline (input, name) -> (loader over the frames ``repeats`` times, what runs on each
    batch in the main process)."""
    views = TwoViews.barlow_twins(size=size).to(device)

    def loader(options: dict, on_device: bool) -> tuple[DataLoader, PretrainDataModule]:
        sources = [Source("hyperkvasir-unlabeled", str(root))] * repeats
        data = PretrainDataModule(sources, batch_size=batch, num_workers=workers,
                                  decode_on_device=on_device, **options)  # fmt: skip
        data.setup("fit")
        return data.train_dataloader(), data

    def viewed(data: PretrainDataModule, batch: dict) -> object:
        moved = data.transfer_batch_to_device(batch, device, 0)
        return views(moved["image"], moved.get("region"))

    found: dict[tuple[str, str], Candidate] = {}
    for name, options in _common.pretrain_inputs(size).items():
        frames, data = loader(options, on_device=False)
        found[name, "decode+resize"] = (frames, lambda batch: None)
        found[name, f"+ views ({device.type})"] = (frames, functools.partial(viewed, data))
        if device.type == "cuda":
            encoded, data = loader(options, on_device=True)
            found[name, "decode_on_device + views"] = (encoded, functools.partial(viewed, data))
    transforms = {"torchvision": _baselines.torchvision_two_views(size)}
    if _baselines.HAVE_LIGHTLY:
        transforms["lightly"] = _baselines.lightly_transform("barlow_twins", size)
    paths = sorted(root.rglob("*.jpg")) * repeats
    for name, transform in transforms.items():
        dataset = _baselines.PILViews(paths, transform)
        pin = device.type == "cuda"
        found["original", name] = (
            DataLoader(dataset, batch, num_workers=workers, pin_memory=pin),
            lambda batch: None,
        )
    return found


def cycling(loader: DataLoader):
    """Batches of ``loader`` without end."""
    while True:
        yield from loader


def per_batch_rates(found: dict[Any, Candidate], scale, batch: int, device) -> dict[Any, float]:
    """Images/s from the median batch, the pipelines called in turn (no worker processes)."""
    batches = {name: cycling(loader) for name, (loader, _) in found.items()}
    calls = {
        name: (lambda name=name, work=work: work(next(batches[name])))
        for name, (_, work) in found.items()
    }
    seconds = _common.interleaved_seconds(calls, scale, device)
    return {name: batch / value for name, value in seconds.items()}


def pass_rates(found: dict[Any, Candidate], scale, batch: int, device) -> dict[Any, float]:
    """Images/s over ``scale.steps`` batches after ``scale.warmup``, one pipeline after the
    other (worker processes prefetch, so batches cannot be timed one by one)."""
    rates = {}
    for name, (loader, work) in found.items():
        batches = cycling(loader)
        consume(batches, work, scale.warmup)
        seconds = _common.timed(functools.partial(consume, batches, work, scale.steps), device)
        rates[name] = batch * scale.steps / seconds
    return rates


def consume(batches, work: Callable[[Any], object], count: int) -> None:
    """Run ``work`` on the next ``count`` batches."""
    for _ in range(count):
        work(next(batches))


def frame_set_rows(height: int, args, scale, device, tmp: Path) -> list[dict[str, Any]]:
    """The rows of one frame set: every pipeline's rate, ratio and crop statistics."""
    width = height * 5 // 4
    repeats = -(-scale.batch * (scale.warmup + scale.steps) // args.frames)  # one pass: enough
    root = synthesize(
        "hyperkvasir-unlabeled", tmp / f"hk{height}", args.frames, height, progress=False
    )
    found = candidates(root, scale.size, scale.batch, scale.workers, repeats, device)
    measure = per_batch_rates if scale.workers == 0 else pass_rates
    rates = measure(found, scale, scale.batch, device)
    stats = crop_statistics(scale.size, height, width, args.crops)
    cores = max(1, scale.workers)
    base = rates["original", "torchvision"]
    return [
        {"frames": f"{width}x{height}", "input": name, "pipeline": pipeline}
        | {"images_per_s": rate, "cores": cores, "images_per_s_per_core": rate / cores}
        | {"vs_torchvision": rate / base}
        | stats[name]
        for (name, pipeline), rate in rates.items()
    ]


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, help="synthetic frames per set (default 128)")
    parser.add_argument("--frame-sizes", type=int, nargs="+", default=[576, 1080],
                        help="frame heights, width 5/4 of each (720x576, 1350x1080)")  # fmt: skip
    parser.add_argument("--workers", type=int, help="loader workers (CPU default 0: per core)")
    parser.add_argument("--crops", type=int, default=20_000, help="crops sampled per input")
    args = parser.parse_args()
    scale, device = _common.setup(args)
    gpu = device.type == "cuda"
    args.frames = args.frames or 128
    workers = args.workers if args.workers is not None else scale.workers if gpu else 0
    if workers == 0:
        torch.set_num_threads(1)
    scale = replace(scale, size=args.size or 224, batch=args.batch or (256 if gpu else 32),
                    workers=workers)  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for height in args.frame_sizes:
            rows += frame_set_rows(height, args, scale, device, Path(tmp))
    inputs = ", ".join(_common.pretrain_inputs(scale.size))
    notes = [
        f"{args.frames} synthetic JPEGs per set in HyperKvasir's layout (5:4 frames of the "
        f"height shown and square ones, half each); inputs {inputs}; views {scale.size} px, "
        f"batch {scale.batch}, {workers} worker(s), views on {device.type}",
        "cores: worker processes (1: everything in the main process, one thread); x "
        "torchvision: against torchvision's pipeline on the same frames",
        f"crops upsampled: {args.crops:,} crops at scale (0.08, 1), ratio (3/4, 4/3) of a "
        "5:4 frame; 'original': torchvision's RandomResizedCrop on the full-resolution frame",
    ]
    notes += [] if _baselines.HAVE_LIGHTLY else [_baselines.LIGHTLY_MISSING]
    title = "Input pipeline alone"
    _common.finish("input_pipeline", title, args, scale, device, rows, COLUMNS, notes, doc=__doc__)


if __name__ == "__main__":
    main()
