"""Fine-tuning step of each downstream task (ssl4gie.tasks) x backbone, data pipeline excluded.

    python benchmarks/finetune_steps.py [--gpu] [--tasks ...] [--backbones ...] [--json out]

``Trainer.fit`` on a ready uint8 batch with the task's targets, on the device: the task's
augmentation (``on_after_batch_transfer``), forward, loss, metrics update, backward and AdamW
step, timed from the end of one batch to the end of the next (median after warm-up). One
validation batch closes the epoch, for the reduce-on-plateau schedule's metric. The batch is
SSL4GIE's fine-tuning batch (48) on a GPU, 8 on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import _common
import torch

from ssl4gie.tasks import ClassificationTask, DepthTask, DetectionTask, SegmentationTask, TaskModule

COLUMNS: list[_common.Column] = [
    ("task", "task", "{}"),
    ("backbone", "backbone", "{}"),
    ("batch", "batch", "{}"),
    ("images_per_s", "images/s", "{:.1f}"),
    ("step_s", "step s", "{:.3f}"),
]
BATCH = {"cpu": 8, "gpu": 48}


def _box_targets(batch: int, size: int, device: torch.device) -> list[torch.Tensor]:
    """One centred polyp box ``[1, 4]`` xyxy per image."""
    box = torch.tensor([[size / 4, size / 4, size * 3 / 4, size * 3 / 4]], device=device)
    return [box.clone() for _ in range(batch)]


def _disc_masks(batch: int, size: int, device: torch.device) -> torch.Tensor:
    """uint8 ``[batch, size, size]``: 1 inside a centred disc (a polyp), 0 outside."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((y - size / 2) ** 2 + (x - size / 2) ** 2 < (size / 4) ** 2).to(torch.uint8)
    return disc.expand(batch, size, size).contiguous().to(device)


# task -> (build(backbone, backbone_kwargs), targets(batch, size, device))
TASKS: dict[str, tuple[Callable[..., TaskModule], Callable[..., dict[str, Any]]]] = {
    "classification": (
        lambda backbone, kw: ClassificationTask(backbone, num_classes=6, backbone_kwargs=kw),
        lambda b, s, d: {"label": torch.arange(b, device=d) % 6},
    ),
    "segmentation": (
        lambda backbone, kw: SegmentationTask(backbone, backbone_kwargs=kw),
        lambda b, s, d: {"mask": _disc_masks(b, s, d)},
    ),
    "detection": (
        lambda backbone, kw: DetectionTask(backbone, backbone_kwargs=kw),
        lambda b, s, d: {"boxes": _box_targets(b, s, d)},
    ),
    "depth": (
        lambda backbone, kw: DepthTask(backbone, backbone_kwargs=kw),
        lambda b, s, d: {"depth": torch.rand(b, 1, s, s, device=d) * 90 + 5},
    ),
}


def step_seconds(task: str, backbone: str, scale: _common.Scale, device: torch.device) -> float:
    """Median seconds of one fine-tuning step of ``task`` on ``backbone``."""
    build, targets = TASKS[task]
    kwargs = {"img_size": scale.size} if backbone.startswith("vit") else {}
    model = build(backbone, kwargs)
    batch = {"image": _common.uint8_batch(scale, device)}
    batch |= targets(scale.batch, scale.size, device)
    clock = _common.StepClock(device, {})
    total = scale.warmup + scale.steps
    trainer = _common.trainer(
        device, scale, total, callbacks=[clock], max_epochs=1, limit_val_batches=1
    )
    loader = _common.repeat_loader(batch, total)
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=_common.repeat_loader(batch, 1))
    return clock.median(scale.warmup)["lightning"]


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    args = parser.parse_args()
    scale, device = _common.setup(args)
    if args.batch is None:
        scale = replace(scale, batch=BATCH[scale.name])
    rows = []
    for backbone in scale.backbones:
        for task in args.tasks:
            seconds = step_seconds(task, backbone, scale, device)
            rows.append({"task": task, "backbone": backbone, "batch": scale.batch})
            rows[-1] |= {"step_s": seconds, "images_per_s": scale.batch / seconds}
    notes = ["one step: augmentation on the device, forward, loss, metrics, backward, AdamW"]
    title = "Fine-tuning step, data pipeline excluded"
    _common.finish("finetune_steps", title, args, scale, device, rows, COLUMNS, notes, doc=__doc__)


if __name__ == "__main__":
    main()
