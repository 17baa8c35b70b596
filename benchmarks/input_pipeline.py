"""Input pipeline throughput alone (no model): ssl4gie's decode+resize workers and on-device
views against the usual torchvision CPU pipeline and lightly's, on the same HyperKvasir-sized
synthetic JPEGs (720x576 frames, 224 px Barlow Twins views by default).

    python benchmarks/input_pipeline.py [--gpu] [--frames 128] [--workers N] [--json out]

Pipelines: ``decode_resize`` (loader workers decode and resize to 256 px), ``+ views``
(plus the two views made on the device), ``decode_on_device + views`` (GPU only: workers read
bytes, nvjpeg decodes), ``torchvision`` (PIL decode and torchvision's two-view transforms in the
workers) and ``lightly`` (lightly's BYOL/Barlow Twins transforms in the workers). Ratios are
against ``torchvision``. On CPU the default is per core: no worker processes and one thread,
every pipeline in the main process, measured batch by batch in turn; with workers, one pass
each after a warm-up batch.
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
from torch.utils.data import ConcatDataset, DataLoader

from ssl4gie.data.datamodules import EncodedJpegs, collate_samples
from ssl4gie.data.datasets import HyperKvasirUnlabeled
from ssl4gie.data.decode import decode_resize_batch
from ssl4gie.data.synthetic import synthesize
from ssl4gie.transforms import TwoViews

COLUMNS: list[_common.Column] = [
    ("pipeline", "pipeline", "{}"),
    ("images_per_s", "images/s", "{:.1f}"),
    ("cores", "cores", "{}"),
    ("images_per_s_per_core", "images/s/core", "{:.1f}"),
    ("vs_torchvision", "x torchvision", "{:.2f}"),
]
Candidate = tuple[DataLoader, Callable[[Any], object]]


def candidates(root: Path, size: int, batch: int, workers: int, repeats: int, device):
    """Pipeline name -> (loader over the frames ``repeats`` times, what runs on each batch in the
    main process)."""
    frames = HyperKvasirUnlabeled(root, size=size * 8 // 7)  # 256 px for 224 px views
    views = TwoViews.barlow_twins(size=size).to(device)
    keep = ("image", "index")

    def loader(dataset, collate=None) -> DataLoader:
        dataset = ConcatDataset([dataset] * repeats)
        pin = device.type == "cuda"
        return DataLoader(dataset, batch, num_workers=workers, collate_fn=collate, pin_memory=pin)

    ours = loader(frames, lambda samples: collate_samples(samples, keep))
    found: dict[str, Candidate] = {
        "decode_resize": (ours, lambda batch: None),
        "decode_resize + views": (
            ours,
            lambda batch: views(batch["image"].to(device, non_blocking=True)),
        ),
    }
    if device.type == "cuda":
        encoded = loader(EncodedJpegs(frames), lambda samples: collate_samples(samples, ["jpeg"]))
        found["decode_on_device + views"] = (
            encoded,
            lambda batch: views(decode_resize_batch(batch["jpeg"], size * 8 // 7, device)),
        )
    transforms = {"torchvision": _baselines.torchvision_two_views(size)}
    if _baselines.HAVE_LIGHTLY:
        transforms["lightly"] = _baselines.lightly_transform("barlow_twins", size)
    for name, transform in transforms.items():
        found[name] = (loader(_baselines.PILViews(frames.images, transform)), lambda batch: None)
    return found


def cycling(loader: DataLoader):
    """Batches of ``loader`` without end."""
    while True:
        yield from loader


def per_batch_rates(found: dict[str, Candidate], scale, batch: int, device) -> dict[str, float]:
    """Images/s from the median batch, the pipelines called in turn (no worker processes)."""
    batches = {name: cycling(loader) for name, (loader, _) in found.items()}
    calls = {
        name: (lambda name=name, work=work: work(next(batches[name])))
        for name, (_, work) in found.items()
    }
    seconds = _common.interleaved_seconds(calls, scale, device)
    return {name: batch / value for name, value in seconds.items()}


def pass_rates(found: dict[str, Candidate], scale, batch: int, device) -> dict[str, float]:
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


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, help="synthetic frames (default 128, GPU 256)")
    parser.add_argument("--frame-size", type=int, default=576, help="frame height (720x576)")
    parser.add_argument("--workers", type=int, help="loader workers (CPU default 0: per core)")
    args = parser.parse_args()
    scale, device = _common.setup(args)
    gpu = device.type == "cuda"
    size, batch, frames = args.size or 224, args.batch or (256 if gpu else 32), args.frames
    frames = frames or (256 if gpu else 128)
    workers = args.workers if args.workers is not None else scale.workers if gpu else 0
    if workers == 0:
        torch.set_num_threads(1)
    scale = replace(scale, size=size, batch=batch, workers=workers)
    repeats = -(-batch * (scale.warmup + scale.steps) // frames)  # ceil: one pass is enough
    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize(
            "hyperkvasir-unlabeled", Path(tmp) / "hk", frames, args.frame_size, progress=False
        )
        found = candidates(root, size, batch, workers, repeats, device)
        measure = per_batch_rates if workers == 0 else pass_rates
        rates = measure(found, scale, batch, device)
    cores = max(1, workers)
    base = rates["torchvision"]
    rows = [
        {"pipeline": name, "images_per_s": rate, "cores": cores}
        | {"images_per_s_per_core": rate / cores, "vs_torchvision": rate / base}
        for name, rate in rates.items()
    ]
    notes = [
        f"{frames} frames {args.frame_size * 5 // 4}x{args.frame_size}, views {size} px, "
        f"batch {batch}, {workers} worker(s), views on {device.type}",
        "cores: worker processes (1: everything in the main process, one thread)",
    ]
    notes += [] if _baselines.HAVE_LIGHTLY else [_baselines.LIGHTLY_MISSING]
    title = "Input pipeline alone"
    _common.finish("input_pipeline", title, args, scale, device, rows, COLUMNS, notes, doc=__doc__)


if __name__ == "__main__":
    main()
