"""Per-step time of each SSL method x backbone: views on the device, loss, backward, optimiser
step and momentum update (one ``training_step`` as Lightning runs it, without the loader).

    python benchmarks/method_steps.py [--batch 32] [--size 96] [--device cpu|cuda]
        [--precision 32|bf16] [--backbones resnet18 vit_tiny_patch16_224] [--steps 3]

Prints seconds per step and images/s (the median of ``--steps`` steps after one warm-up step),
and the bare backbone forward+backward on the same views as a baseline, so the ratio shows what
the method's heads, loss and optimiser add.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ssl4gie.methods import METHODS
from ssl4gie.transforms import RECIPES, MultiCrop, recipe_by_name


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, steps: int, device: torch.device) -> float:
    """Median seconds of ``step()`` over ``steps`` calls after one warm-up call."""
    step()
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def views_at(name: str, size: int):
    """The method's view preset at ``size`` px (multi-crop: local crops at 96/224 of it)."""
    if RECIPES[name] is MultiCrop:
        return recipe_by_name(name, global_size=size, local_size=max(16, size * 96 // 224))
    return recipe_by_name(name, size=size)


def method_step(name: str, backbone: str, args, device: torch.device):
    """One optimiser step of method ``name`` on a random uint8 batch, as a closure."""
    kwargs = {"backbone_kwargs": {"img_size": args.size}} if backbone.startswith("vit") else {}
    method = METHODS[name](backbone=backbone, **kwargs).to(device)
    method.views = views_at(name, args.size).to(device)
    optimizer = torch.optim.SGD(method.parameters(), lr=1e-3)
    images = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8)
    images = images.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step() -> None:
        with autocast:
            loss, _ = method.ssl_loss(method.views(images))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def bare() -> None:
        with autocast:
            views = method.views(images)
            loss = sum(method.backbone(view).float().pow(2).mean() for view in views)
        loss.backward()
        optimizer.zero_grad(set_to_none=True)

    return step, bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS))
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "vit_tiny_patch16_224"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []
    print(f"batch {args.batch}, {args.size} px, {device}, precision {args.precision}")
    print(f"{'method':<14}{'backbone':<24}{'s/step':>8}{'images/s':>10}{'bare s':>8}{'x bare':>8}")
    for backbone in args.backbones:
        for name in args.methods:
            step, bare = method_step(name, backbone, args, device)
            seconds, bare_seconds = (
                time_steps(step, args.steps, device),
                time_steps(bare, args.steps, device),
            )
            rows.append({"method": name, "backbone": backbone, "seconds": seconds,
                         "bare_seconds": bare_seconds})  # fmt: skip
            print(f"{name:<14}{backbone:<24}{seconds:>8.3f}{args.batch / seconds:>10.1f}"
                  f"{bare_seconds:>8.3f}{seconds / bare_seconds:>8.2f}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
