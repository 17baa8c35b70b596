"""Input pipeline throughput: ssl4gie's decode+resize workers and on-device views vs the usual
torchvision CPU pipeline, on the same synthetic HyperKvasir-sized JPEGs in the same run.

    python benchmarks/input_pipeline.py [--n 256] [--workers 1] [--device cpu|cuda] [--json out]

Prints images/s for: (a) decode+resize in the loader workers alone; (b) (a) plus two Barlow
Twins views made on ``--device``; (c) the baseline, PIL decode and torchvision's two-view
transforms in the workers. Ratios are against (c). Per-core figures: ``--workers 1`` with one
torch thread.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from ssl4gie.data.datamodules import collate_samples
from ssl4gie.data.datasets import HyperKvasirUnlabeled
from ssl4gie.data.synthetic import synthesize
from ssl4gie.transforms import TwoViews


class TorchvisionTwoViews(Dataset):
    """The baseline: PIL decode and torchvision's BYOL/Barlow Twins two-view CPU transforms."""

    def __init__(self, paths: list[Path], size: int) -> None:
        from torchvision import transforms as T

        def view(blur_p: float, solarize_p: float):
            return T.Compose([
                T.RandomResizedCrop(size, interpolation=T.InterpolationMode.BICUBIC),
                T.RandomHorizontalFlip(),
                T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
                T.RandomGrayscale(p=0.2),
                T.RandomApply([T.GaussianBlur(23, (0.1, 2.0))], p=blur_p),
                T.RandomSolarize(128, p=solarize_p),
                T.ToTensor(),
                T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            ])  # fmt: skip

        self.paths = paths
        self.views = (view(1.0, 0.0), view(0.1, 0.2))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            rgb = image.convert("RGB")
        return self.views[0](rgb), self.views[1](rgb)


def images_per_second(loader: DataLoader, per_batch=lambda batch: None) -> float:
    """Images/s over one pass of ``loader`` (after a warm-up batch), ``per_batch`` included."""
    iterator = iter(loader)
    per_batch(next(iterator))
    count, start = 0, time.perf_counter()
    for batch in iterator:
        per_batch(batch)
        count += len(batch["image"]) if isinstance(batch, dict) else len(batch[0])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="number of frames")
    parser.add_argument("--frame-size", type=int, default=576, help="frame height (720x576)")
    parser.add_argument("--size", type=int, default=224, help="view size")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize("hyperkvasir-unlabeled", Path(tmp) / "hk", args.n, args.frame_size)
        frames = HyperKvasirUnlabeled(root, size=args.size + args.size // 7)  # 256 for 224
        loader_args = {"batch_size": args.batch, "num_workers": args.workers}
        ours = DataLoader(frames, collate_fn=collate_samples, **loader_args)
        views = TwoViews.barlow_twins(size=args.size).to(device)

        def make_views(batch):
            images = batch["image"].to(device, non_blocking=True)
            out = views(images)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out

        baseline = DataLoader(TorchvisionTwoViews(frames.images, args.size), **loader_args)
        figures = {
            "decode_resize": images_per_second(ours),
            "decode_resize_views": images_per_second(ours, make_views),
            "torchvision_baseline": images_per_second(baseline),
        }
    base = figures["torchvision_baseline"]
    print(f"{args.n} frames {args.frame_size * 5 // 4}x{args.frame_size}, views {args.size} px, "
          f"{args.workers} worker(s), views on {device}")  # fmt: skip
    for name, value in figures.items():
        print(f"{name:<22} {value:8.1f} images/s   x{value / base:5.2f} vs baseline")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "images_per_s": figures}))


if __name__ == "__main__":
    main()
