"""``ssl4gie demo``: the main job end to end on synthetic data, on a CPU in minutes.

Every step writes under ``--out`` (default ``runs/demo``) and every number printed is measured
in this run:

1. ``data``: synthetic Hyperkvasir-unlabelled, HyperKvasir-labelled and Kvasir-SEG in their
   real on-disk layouts (reused when already there), and a PNG of Barlow Twins views.
2. ``pretrain``: Barlow Twins on a ResNet-18 with the real pretraining module and DataModule.
3. ``zoo``: the encoder exported into the local zoo folder and loaded back by name with
   :func:`ssl4gie.load_backbone`.
4. ``finetune``: landmark classification and polyp segmentation, each from the pretrained
   encoder and from random initialisation; test metrics of the final weights in a table,
   curves and a segmentation overlay as PNGs.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ssl4gie.cli._args import _Parser

DEMO_NAME = "resnet18-barlow-demo"


@dataclass(frozen=True)
class Preset:
    unlabeled: int  # frames of each synthetic dataset
    labeled: int
    kvasir_seg: int
    size: int  # frame size on disk
    load: int  # size the loaders resize to (views and tasks work at this size)
    pretrain_epochs: int
    finetune_epochs: int
    batch: int


PRESETS = {
    "smoke": Preset(16, 46, 12, 64, 32, 1, 1, 8),
    "quick": Preset(192, 460, 128, 128, 64, 12, 8, 32),
    "full": Preset(8000, 4600, 1000, 256, 224, 100, 50, 128),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ssl4gie demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default cpu")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--full", action="store_true", help="bigger data and runs, for a GPU")
    sizes.add_argument("--smoke", action="store_true", help="tiny data and runs (tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and training")
    parser.add_argument("--workers", type=int, default=None, help="loader workers per loader")
    return parser


def make_data(out: Path, preset: Preset, seed: int) -> dict[str, Path]:
    """Write (or reuse) the synthetic datasets; return layout -> root."""
    from ssl4gie.data.synthetic import synthesize

    wanted = {
        "hyperkvasir-unlabeled": preset.unlabeled,
        "hyperkvasir-labeled": preset.labeled,
        "kvasir-seg": preset.kvasir_seg,
    }
    roots = {}
    for layout, n in wanted.items():
        roots[layout] = out / "data" / layout
        if not roots[layout].exists():
            synthesize(layout, roots[layout], n=n, size=preset.size, seed=seed)
    return roots


def save_views(out: Path, root: Path, preset: Preset, seed: int) -> Path:
    """A PNG of four frames and their Barlow Twins views (endoscopy field-of-view aware)."""
    import torch

    from ssl4gie.data.datasets import HyperKvasirUnlabeled
    from ssl4gie.transforms import TwoViews
    from ssl4gie.viz import denormalise, save_grid

    frames = HyperKvasirUnlabeled(root, size=preset.size)
    images = torch.stack([frames[i]["image"] for i in range(4)])
    recipe = TwoViews.barlow_twins(size=preset.load, fov=True)
    views = [denormalise(v) for v in recipe(images, generator=torch.Generator().manual_seed(seed))]
    rows = [[images[r], views[0][r], views[1][r]] for r in range(len(images))]
    return save_grid(rows, out / "views.png", ["frame", *recipe.view_names()])


def trainer(out: Path, name: str, epochs: int, device: str):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    return L.Trainer(
        max_epochs=epochs,
        accelerator=device,
        devices=1,
        precision="bf16-mixed" if device == "cuda" else "32-true",
        logger=CSVLogger(out / "logs", name=name, version=""),
        default_root_dir=out / name,
        enable_checkpointing=False,  # one checkpoint at the end of pretraining is all we need
        enable_model_summary=False,
        log_every_n_steps=1,
    )


def pretrain(out: Path, root: Path, preset: Preset, args) -> Path:
    """Barlow Twins on a ResNet-18; return the last checkpoint."""
    from ssl4gie.data.datamodules import PretrainDataModule, Source
    from ssl4gie.methods import BarlowTwins
    from ssl4gie.transforms import TwoViews

    method = BarlowTwins(
        "resnet18",
        projector_dims=[1024, 1024],
        views=TwoViews.barlow_twins(size=preset.load),
        warmup_epochs=1,
    )
    data = PretrainDataModule(
        Source("hyperkvasir-unlabeled", str(root)),
        max_size=preset.load,
        batch_size=preset.batch,
        num_workers=args.workers,
    )
    run = trainer(out, "pretrain", preset.pretrain_epochs, args.device)
    run.fit(method, datamodule=data)
    checkpoint = out / "pretrain" / "last.ckpt"
    run.save_checkpoint(checkpoint)
    return checkpoint


def publish_locally(out: Path, checkpoint: Path, preset: Preset) -> str:
    """Export the encoder into the local zoo folder, register its card, load it by name."""
    import ssl4gie
    from ssl4gie.zoo.cards import WeightsCard
    from ssl4gie.zoo.load import converted_folder

    card = WeightsCard(
        name=DEMO_NAME, architecture="resnet18", method="barlow",
        data="synthetic Hyperkvasir-unlabelled (ssl4gie demo)", epochs=preset.pretrain_epochs,
        input_size=(3, preset.load, preset.load), license="apache-2.0",
        origin_url=out.resolve().as_uri(), available=True, notes="made by 'ssl4gie demo'",
    )  # fmt: skip
    ssl4gie.register_backbone(card, overwrite=True)
    folder = converted_folder(card)
    shutil.rmtree(folder, ignore_errors=True)
    ssl4gie.export_backbone(checkpoint, folder, name=DEMO_NAME, card=card)
    ssl4gie.load_backbone(DEMO_NAME)  # by name, as a notebook user would
    return DEMO_NAME


def finetune(out: Path, roots: dict[str, Path], backbone: str, preset: Preset, args) -> dict:
    """Landmarks classification and polyp segmentation from ``backbone``; test metrics."""
    from ssl4gie.data.datamodules import ClassificationDataModule, SegmentationDataModule
    from ssl4gie.tasks import ClassificationTask, SegmentationTask

    common = {"size": preset.load, "batch_size": preset.batch, "num_workers": args.workers}
    jobs = {
        "classification": (
            ClassificationTask(backbone, num_classes=6),
            ClassificationDataModule(
                str(roots["hyperkvasir-labeled"]), options={"task": "landmarks"}, **common
            ),
            "test_f1",
        ),
        "segmentation": (
            SegmentationTask(backbone, decoder="fpn"),
            SegmentationDataModule(str(roots["kvasir-seg"]), **common),
            "test_dice",
        ),
    }
    init = "pretrained" if backbone == DEMO_NAME else "random"
    results = {}
    for task, (model, data, metric) in jobs.items():
        run = trainer(out, f"{task}-{init}", preset.finetune_epochs, args.device)
        run.fit(model, datamodule=data)
        (tested,) = run.test(model, datamodule=data, verbose=False)  # the final weights
        results[task] = (metric, tested[metric])
    return results


def read_metric(csv_path: Path, column: str, by: str = "epoch") -> tuple[list, list]:
    """The ``column`` of a Lightning CSV log against ``by``, skipping empty rows."""
    with open(csv_path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get(column)]
    return [float(row[by]) for row in rows], [float(row[column]) for row in rows]


def save_report(out: Path) -> list[Path]:
    """Curves of pretraining and fine-tuning, and the last segmentation overlay, as PNGs."""
    from ssl4gie.viz import save_curves

    logs = out / "logs"
    loss = read_metric(logs / "pretrain" / "metrics.csv", "train/loss_step", by="step")
    panels = {
        f"{task}: validation {metric}": {
            init: read_metric(logs / f"{task}-{init}" / "metrics.csv", f"val_{metric}")
            for init in ("pretrained", "random")
        }
        for task, metric in (("classification", "f1"), ("segmentation", "dice"))
    }
    pretraining = {"Barlow Twins pretraining loss": {"train": loss}}
    written = [
        save_curves(pretraining, out / "pretrain_loss.png", xlabel="step"),
        save_curves(panels, out / "finetune_curves.png"),
    ]
    overlays = sorted((logs / "segmentation-pretrained").rglob("val_epoch*.png"))
    if overlays:
        written.append(Path(shutil.copy(overlays[-1], out / "segmentation_predictions.png")))
    return written


def main(argv: list[str]) -> int:
    """Run the demo's steps and print what each measured; return the exit code."""
    args = build_parser().parse_args(argv)
    preset = PRESETS["full" if args.full else "smoke" if args.smoke else "quick"]
    if args.workers is None:
        args.workers = 0 if args.smoke else 2
    out = Path(args.out)
    started = time.perf_counter()
    roots = make_data(out, preset, args.seed)
    save_views(out, roots["hyperkvasir-unlabeled"], preset, args.seed)

    import lightning as L

    L.seed_everything(args.seed, verbose=False)
    checkpoint = pretrain(out, roots["hyperkvasir-unlabeled"], preset, args)
    name = publish_locally(out, checkpoint, preset)
    results = {}
    for init, backbone in (("pretrained", name), ("random", "resnet18")):
        L.seed_everything(args.seed, verbose=False)
        results[init] = finetune(out, roots, backbone, preset, args)
    pictures = save_report(out)

    print(f"\n{'task':<16}{'init':<12}{'test metric':<14}{'value':>8}")
    for init, by_task in results.items():
        for task, (metric, value) in by_task.items():
            print(f"{task:<16}{init:<12}{metric:<14}{value:>8.3f}")
    print(f"\npretrained encoder '{name}' (loads with ssl4gie.load_backbone('{name}'))")
    print("pictures: " + ", ".join(str(p) for p in [out / "views.png", *pictures]))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0
