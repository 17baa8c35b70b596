"""``ssl4gie demo``: the main job end to end on synthetic data, on a CPU in minutes.

Every step writes under ``--out`` (default ``runs/demo``) and every number printed is measured
in this run:

1. ``data``: synthetic Hyperkvasir-unlabelled and Kvasir-SEG in their real on-disk layouts
   (reused when already there), and a PNG of Barlow Twins views.
2. ``pretrain``: Barlow Twins on a ResNet-18 with the real pretraining module and DataModule,
   with short-run settings (:data:`SHORT_RUN`, :data:`NO_COLOUR`).
3. ``zoo``: the encoder exported into the local zoo folder and loaded back by name with
   :func:`ssl4gie.load_backbone`.
4. ``finetune``: polyp segmentation (Kvasir-SEG) from the pretrained encoder and from random
   initialisation, with all training labels and with 10 % of them, over two seeds: where the
   label-efficiency studies see pretraining matter (a dense task, few labels; the synthetic
   landmark classification is solved from random weights), tested on a fixed part of 128
   frames. A table of test Dice (final weights, mean ± half the range over seeds), one
   sentence that reads it, curves and a segmentation overlay as PNGs.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from ssl4gie.cli._args import _Parser

DEMO_NAME = "resnet18-barlow-demo"
INITS = ("pretrained", "random")


@dataclass(frozen=True)
class Preset:
    unlabeled: int  # frames of each synthetic dataset
    kvasir_seg: int
    size: int  # frame size on disk (pretraining crops its views from frames this large)
    load: int  # size the loaders resize to (views and tasks work at this size)
    pretrain_epochs: int
    finetune_epochs: int
    batch: int
    fractions: tuple[float, ...]  # fractions of the training labels fine-tuned on
    seeds: int  # fine-tuning seeds per cell of the table
    split: tuple[float, float, float]  # train/val/test parts of Kvasir-SEG


PRESETS = {
    "smoke": Preset(16, 16, 64, 32, 1, 1, 8, (1.0, 0.5), 1, (0.5, 0.25, 0.25)),
    # 102 training frames as 80 % of 128 would be, and a test part of 128 frames: on 13 test
    # frames (10 %) one model's Dice moved by up to 0.06 against 490 held-out frames
    "quick": Preset(192, 256, 128, 64, 12, 8, 32, (1.0, 0.1), 2, (0.4, 0.1, 0.5)),
    "full": Preset(8000, 1000, 256, 224, 100, 50, 128, (1.0, 0.1), 3, (0.8, 0.1, 0.1)),
}

SHORT_RUN = {"optimizer": "adamw", "base_lr": 8e-3, "weight_decay": 1e-4}
"""The demo's pretraining optimisation: AdamW at 1e-3 for batch 32 (8e-3 per 256 images).

Barlow Twins' own LARS rate (0.2 per 256 images, trust coefficient 0.001) is made for 1000
epochs at batch 2048; scaled to batch 32 for 72 steps it moves the convolutions by 0.2 % and
trains only the batch-norm parameters, which undoes timm's zero-initialised residual branches:
a worse start for fine-tuning than random initialisation (measured: test Dice 0.661 against
0.751). AdamW moves them by 10 to 28 % in the same steps."""

NO_COLOUR = {"jitter_p": 0.0, "grayscale_p": 0.0, "solarize_p": (0.0, 0.0)}
"""The demo's views drop the colour transforms: a synthetic polyp differs from the mucosa mostly
by its tint, which colour jitter and grayscale teach the encoder to ignore (measured with
AdamW: a frozen-encoder probe's test Dice 0.672 with them, 0.706 without)."""


def pretraining_views(preset: Preset):
    """Barlow Twins' views at the demo's size, without the colour transforms (:data:`NO_COLOUR`)."""
    from ssl4gie.transforms import TwoViews

    return TwoViews.barlow_twins(size=preset.load, **NO_COLOUR)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ssl4gie demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default cpu")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--full", action="store_true", help="bigger data and runs, for a GPU")
    sizes.add_argument("--smoke", action="store_true", help="tiny data and runs (tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and first run")
    parser.add_argument("--workers", type=int, default=None, help="loader workers per loader")
    return parser


def make_data(out: Path, preset: Preset, seed: int) -> dict[str, Path]:
    """Write (or reuse) the synthetic datasets; return layout -> root."""
    from ssl4gie.data.synthetic import synthesize

    wanted = {
        "hyperkvasir-unlabeled": preset.unlabeled,
        "kvasir-seg": preset.kvasir_seg,
    }
    roots = {}
    for layout, n in wanted.items():
        roots[layout] = out / "data" / layout
        if not roots[layout].exists():
            synthesize(layout, roots[layout], n=n, size=preset.size, seed=seed)
    return roots


def save_views(out: Path, root: Path, preset: Preset, seed: int) -> Path:
    """A PNG of four frames and the two views pretraining makes of each."""
    import torch

    from ssl4gie.data.datasets import HyperKvasirUnlabeled
    from ssl4gie.viz import denormalise, save_grid

    frames = HyperKvasirUnlabeled(root, size=preset.size)
    images = torch.stack([frames[i]["image"] for i in range(4)])
    recipe = pretraining_views(preset)
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
        enable_checkpointing=False,  # pretraining saves its final weights once; tasks keep none
        enable_model_summary=False,
        log_every_n_steps=1,
    )


def pretrain(out: Path, root: Path, preset: Preset, args) -> Path:
    """Barlow Twins on a ResNet-18 (:data:`SHORT_RUN`, :func:`pretraining_views`); return the
    checkpoint of its final weights."""
    from ssl4gie.data.datamodules import PretrainDataModule, Source
    from ssl4gie.methods import BarlowTwins

    method = BarlowTwins(
        "resnet18",
        projector_dims=[1024, 1024],
        views=pretraining_views(preset),
        warmup_epochs=1,
        **SHORT_RUN,
    )
    data = PretrainDataModule(
        Source("hyperkvasir-unlabeled", str(root)),
        max_size=preset.size,  # crops from the frames as stored, as the official pipelines
        batch_size=preset.batch,
        num_workers=args.workers,
    )
    run = trainer(out, "pretrain", preset.pretrain_epochs, args.device)
    run.fit(method, datamodule=data)
    checkpoint = out / "pretrain" / "last.ckpt"
    run.save_checkpoint(checkpoint, weights_only=True)  # the export needs only the weights
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


def finetune(
    out: Path, root: Path, init: str, fraction: float, seed: int, preset: Preset, args
) -> float:
    """Fine-tune polyp segmentation from ``init`` on ``fraction`` of the training labels with
    training seed ``seed``; return the test Dice of the final weights.

    The split is the same for every run (seed ``args.seed``): the seeds vary the label subset
    and the training, never the test set. An epoch shows each kept label ``1/fraction`` times,
    so that every run takes as many optimiser steps (with 10 % of the labels, plain epochs
    would give a tenth of the steps and compare two barely trained models)."""
    import lightning as L
    from torch.utils.data import ConcatDataset

    from ssl4gie.data.datamodules import SegmentationDataModule
    from ssl4gie.tasks import SegmentationTask

    data = SegmentationDataModule(
        str(root), size=preset.load, batch_size=preset.batch, num_workers=args.workers,
        seed=args.seed, label_seed=seed, label_fraction=None if fraction == 1 else fraction,
        fractions=preset.split,
    )  # fmt: skip
    L.seed_everything(seed, verbose=False)
    data.setup()
    data.parts["train"] = ConcatDataset([data.parts["train"]] * round(1 / fraction))
    model = SegmentationTask(DEMO_NAME if init == "pretrained" else "resnet18", decoder="fpn")
    run = trainer(out, run_name(init, fraction, seed), preset.finetune_epochs, args.device)
    run.fit(model, datamodule=data)
    (tested,) = run.test(model, datamodule=data, verbose=False)  # the final weights
    return tested["test_dice"]


def run_name(init: str, fraction: float, seed: int) -> str:
    """The log folder of one fine-tuning run, e.g. ``segmentation-random-10pct-seed1``."""
    return f"segmentation-{init}-{round(fraction * 100)}pct-seed{seed}"


@dataclass(frozen=True)
class Cell:
    """One init's test metric over seeds: mean and half the range (the spread of 2 seeds)."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def spread(self) -> float:
        return (max(self.values) - min(self.values)) / 2

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.spread:.3f}"


def table(results: dict[float, dict[str, Cell]]) -> list[str]:
    """The printed table: one row per label fraction, pretrained and random side by side with
    their difference."""
    lines = [f"{'labels':>6}{'pretrained':>16}{'random':>16}{'difference':>12}"]
    for fraction, cells in results.items():
        difference = cells["pretrained"].mean - cells["random"].mean
        lines.append(
            f"{fraction:>6.0%}{cells['pretrained']!s:>16}{cells['random']!s:>16}"
            f"{difference:>+12.3f}"
        )
    return lines


def reading(results: dict[float, dict[str, Cell]]) -> str:
    """One plain sentence that reads the table: where pretraining beats random initialisation
    by more than the seeds' spread (the sum of both half-ranges), where it loses, and "no gain
    here" for the rest; with one seed per cell it says that it cannot tell."""
    if any(len(cell.values) < 2 for cells in results.values() for cell in cells.values()):
        return "One seed per cell: too few to tell a gain from seed noise (run without --smoke)."
    kinds: dict[str, list[str]] = {"gain": [], "loss": [], "none": []}
    for fraction, cells in results.items():
        pretrained, random = cells["pretrained"], cells["random"]
        difference = pretrained.mean - random.mean
        beyond = abs(difference) > pretrained.spread + random.spread
        kind = "none" if not beyond else "gain" if difference > 0 else "loss"
        kinds[kind].append(f"{fraction:.0%} of the labels ({difference:+.3f} Dice)")
    parts = []
    if kinds["gain"]:
        parts.append("pretraining helps with " + " and ".join(kinds["gain"]))
    if kinds["loss"]:
        parts.append("random initialisation does better with " + " and ".join(kinds["loss"]))
    if kinds["none"]:
        parts.append("no gain here with " + " and ".join(kinds["none"]))
    sentence = "; ".join(parts)
    return (
        f"{sentence[0].upper()}{sentence[1:]} (a difference within the seeds' spread is no gain)."
    )


def read_metric(csv_path: Path, column: str, by: str = "epoch") -> tuple[list, list]:
    """The ``column`` of a Lightning CSV log against ``by``, skipping empty rows."""
    with open(csv_path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get(column)]
    return [float(row[by]) for row in rows], [float(row[column]) for row in rows]


def save_report(out: Path, seed: int) -> list[Path]:
    """Curves of pretraining and of the all-labels fine-tunes of seed ``seed``, and the last
    segmentation overlay of the pretrained one, as PNGs."""
    from ssl4gie.viz import save_curves

    logs = out / "logs"
    loss = read_metric(logs / "pretrain" / "metrics.csv", "train/loss_step", by="step")
    dice = {
        init: read_metric(logs / run_name(init, 1.0, seed) / "metrics.csv", "val_dice")
        for init in INITS
    }
    written = [
        save_curves({"Barlow Twins pretraining loss": {"train": loss}},
                    out / "pretrain_loss.png", xlabel="step"),
        save_curves({"segmentation: validation Dice": dice}, out / "finetune_curves.png"),
    ]  # fmt: skip
    overlays = sorted((logs / run_name("pretrained", 1.0, seed)).rglob("val_epoch*.png"))
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
    clock = Clock()
    print(f"[1/4] data: synthetic datasets and a picture of the views in {out}")
    roots = make_data(out, preset, args.seed)
    save_views(out, roots["hyperkvasir-unlabeled"], preset, args.seed)
    clock.lap("data")

    import lightning as L

    print(f"[2/4] pretrain: Barlow Twins, ResNet-18, {preset.pretrain_epochs} epochs, AdamW, "
          "no colour jitter (short-run settings: see ssl4gie.cli.demo.SHORT_RUN)")  # fmt: skip
    L.seed_everything(args.seed, verbose=False)
    checkpoint = pretrain(out, roots["hyperkvasir-unlabeled"], preset, args)
    clock.lap("pretrain")
    print("[3/4] zoo: export the encoder and load it back by name")
    name = publish_locally(out, checkpoint, preset)
    clock.lap("zoo")
    seeds = range(args.seed, args.seed + preset.seeds)
    fractions = ", ".join(f"{fraction:.0%}" for fraction in preset.fractions)
    print(f"[4/4] finetune: polyp segmentation x {len(INITS)} inits x label fractions "
          f"{fractions} x seeds {', '.join(map(str, seeds))}")  # fmt: skip
    root = roots["kvasir-seg"]
    results = {
        fraction: {
            init: Cell(tuple(finetune(out, root, init, fraction, seed, preset, args)
                             for seed in seeds))
            for init in INITS
        }
        for fraction in preset.fractions
    }  # fmt: skip
    clock.lap("finetune")
    pictures = save_report(out, args.seed)

    print(f"\npolyp segmentation, test Dice of the final weights (mean ± half the range over "
          f"{preset.seeds} seed(s))")  # fmt: skip
    print("\n".join(table(results)))
    print(reading(results))
    print(f"\npretrained encoder '{name}' (loads with ssl4gie.load_backbone('{name}'))")
    print("pictures: " + ", ".join(str(p) for p in [out / "views.png", *pictures]))
    print(f"time: {clock}")
    return 0


class Clock:
    """Wall-clock seconds per demo step."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[step], self.last = now - self.last, now

    def __str__(self) -> str:
        steps = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in self.laps.items())
        return f"{steps}; total {time.perf_counter() - self.start:.0f} s"
