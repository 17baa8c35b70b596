"""What the benchmark scripts share: sizes, the command line, timing, FLOPs, tables and JSON.

Timing: a figure is the median over ``--steps`` timed steps after ``--warmup`` untimed ones, the
device synchronised around each. Candidates compared in one table run interleaved, one step of
each in turn (:func:`interleaved_seconds`, :class:`StepClock`), so a busy machine slows all of
them alike and their ratios stay meaningful.

Sizes (:data:`SCALES`): ``cpu`` is reduced so that the suite runs in minutes on a laptop, with
one torch thread (per-core figures; loader workers take other cores); ``gpu`` (``--gpu``) is
the official one: ResNet-50 and ViT-B/16 at 224 px, bf16.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import functools
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from ssl4gie.data.datamodules import collate_samples
from ssl4gie.methods import METHODS, SSLMethod
from ssl4gie.transforms import RECIPES, MultiCrop, recipe_by_name

RESULTS = Path(__file__).parent / "results"
HYPERKVASIR_UNLABELLED = 99_417  # frames in HyperKvasir's unlabelled set (one SSL4GIE epoch)
Column = tuple[str, str, str]  # (row key, header, format)

warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
warnings.filterwarnings("ignore", message=r".*no `val_dataloader`.*")
warnings.filterwarnings("ignore", message=r".*litlogger.*")


@dataclass(frozen=True)
class Scale:
    """The sizes of one benchmark run.

    ``size``: view (input) size in px; ``frame_size``: height of the synthetic JPEG frames
    (width 5/4 of it, as HyperKvasir's 720x576); ``workers``: loader worker processes;
    ``precision``: Lightning's; ``heads``: ``"official"`` or ``"quarter"`` (projector widths
    / 4, for the CPU's ResNet-18 whose 512 features are a quarter of ResNet-50's).
    """

    name: str
    backbones: tuple[str, ...]
    size: int
    frame_size: int
    batch: int
    warmup: int
    steps: int
    workers: int
    precision: str
    heads: str


SCALES = {
    "cpu": Scale("cpu", ("resnet18", "vit_tiny_patch16_224"), 64, 288, 16, 1, 3, 1, "32-true",
                 "quarter"),
    "gpu": Scale("gpu", ("resnet50", "vit_base_patch16_224"), 224, 576, 256, 5, 20, 12,
                 "bf16-mixed", "official"),
}  # fmt: skip

QUARTER_HEADS: dict[str, dict[str, Any]] = {
    "mocov3": {"mlp_dim": 1024, "dim": 256},
    "barlow_twins": {"projector_dims": [2048, 2048, 2048]},
    "byol": {"mlp_dim": 1024, "dim": 256},
    "simclr": {"mlp_dim": 512, "dim": 128},
    "dino": {"out_dim": 16384, "hidden_dim": 512},
    "swav": {"hidden_dim": 512},
    "mae": {"decoder_width": 128, "decoder_heads": 4},
    "simmim": {},
}

# Dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's data sheets, by device-name substring;
# the first match wins.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


def parser(description: str) -> argparse.ArgumentParser:
    """The options every script takes; scripts add their own."""
    args = argparse.ArgumentParser(description=description)
    args.add_argument("--gpu", action="store_true", help="the full size on the CUDA device")
    args.add_argument("--json", type=Path, help="write the figures to this file")
    args.add_argument("--backbones", nargs="+", help="timm names (default: the scale's)")
    args.add_argument("--batch", type=int, help="images per step (default: the scale's)")
    args.add_argument("--size", type=int, help="view size in px (default: the scale's)")
    args.add_argument("--warmup", type=int, help="untimed steps first (default: the scale's)")
    args.add_argument("--steps", type=int, help="timed steps (default: the scale's)")
    args.add_argument("--compile", action="store_true", help="also time torch.compile (fast_path)")
    return args


def setup(args: argparse.Namespace) -> tuple[Scale, torch.device]:
    """The scale with the command line's overrides, and the device (TF32 and cuDNN autotuning
    on for CUDA, as the trainers get ``benchmark=True``)."""
    if args.gpu and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device and torch sees none; run without --gpu")
    scale = SCALES["gpu" if args.gpu else "cpu"]
    given = {key: getattr(args, key) for key in ("batch", "size", "warmup", "steps")}
    given["backbones"] = tuple(args.backbones) if args.backbones else None
    scale = replace(scale, **{key: value for key, value in given.items() if value is not None})
    if scale.steps < 1 or scale.warmup < 0 or scale.batch < 2:
        raise SystemExit("need --steps >= 1, --warmup >= 0 and --batch >= 2")
    if args.gpu:
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = True
    else:  # per-core figures; OpenMP threads waiting on each other stall on a busy machine
        torch.set_num_threads(1)
    return scale, torch.device("cuda" if args.gpu else "cpu")


def pipeline_scale(scale: Scale) -> Scale:
    """More steps for runs fed by loader workers: the batches they prefetch (two per worker)
    during the warm-up must not dominate the timed steps."""
    return replace(scale, warmup=scale.warmup + 2, steps=3 * scale.steps)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], object], device: torch.device) -> float:
    """Seconds of one ``call()``, the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    call()
    sync(device)
    return time.perf_counter() - start


def interleaved_seconds(
    candidates: dict[str, Callable[[], object]], scale: Scale, device: torch.device
) -> dict[str, float]:
    """Median seconds per call of each candidate, called in turn ``warmup + steps`` times."""
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for step in range(scale.warmup + scale.steps):
        for name, call in candidates.items():
            elapsed = timed(call, device)
            if step >= scale.warmup:
                seconds[name].append(elapsed)
    return {name: statistics.median(values) for name, values in seconds.items()}


class StepClock(L.Callback):
    """Times every Lightning training batch from the end of the previous one (loading, transfer,
    views, step and hooks), and runs ``others`` (timed) in turn between batches.

    Args:
        device: synchronised around every timing.
        others: extra candidates, one call each after every Lightning batch.
    """

    def __init__(self, device: torch.device, others: dict[str, Callable[[], object]]) -> None:
        self.device, self.others = device, others
        self.batch_seconds: list[float] = []
        self.other_seconds: dict[str, list[float]] = {name: [] for name in others}
        self._start = 0.0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        sync(self.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        sync(self.device)
        self.batch_seconds.append(time.perf_counter() - self._start)
        for name, call in self.others.items():
            self.other_seconds[name].append(timed(call, self.device))
        self._start = time.perf_counter()

    def median(self, warmup: int) -> dict[str, float]:
        """Median seconds after ``warmup`` batches: ``"lightning"`` and each of ``others``."""
        medians = {"lightning": statistics.median(self.batch_seconds[warmup:])}
        return medians | {k: statistics.median(v[warmup:]) for k, v in self.other_seconds.items()}

    def images_per_second(self, batch: int, warmup: int) -> float:
        """Throughput over the batches after ``warmup`` (a mean: loaders deliver in bursts)."""
        seconds = self.batch_seconds[warmup:]
        return batch * len(seconds) / sum(seconds)


@functools.cache
def scratch() -> str:
    """A temporary folder for what the trainers write (pictures, checkpoints), removed at exit."""
    folder = tempfile.TemporaryDirectory(prefix="ssl4gie-bench-")
    atexit.register(folder.cleanup)
    return folder.name


def trainer(device: torch.device, scale: Scale, steps: int, **kwargs: Any) -> L.Trainer:
    """A quiet one-device trainer for ``steps`` optimiser steps, writing under :func:`scratch`."""
    settings = {
        "accelerator": "gpu" if device.type == "cuda" else "cpu",
        "devices": 1,
        "precision": scale.precision,
        "max_steps": steps,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "benchmark": device.type == "cuda",
        "default_root_dir": scratch(),
    }
    return L.Trainer(**(settings | kwargs))


class _Repeated(Dataset):
    """The samples of a ready-made batch dict, over and over."""

    def __init__(self, batch: dict[str, Any], count: int) -> None:
        self.batch, self.size = batch, len(batch["image"])
        self.count = count

    def __len__(self) -> int:
        return self.size * self.count

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {key: values[i % self.size] for key, values in self.batch.items()}


def repeat_loader(batch: dict[str, Any], count: int) -> DataLoader:
    """A loader giving ``batch`` (a sample-contract batch dict, already on the device) ``count``
    times: no decoding, only the stacking of its samples."""
    return DataLoader(
        _Repeated(batch, count), batch_size=len(batch["image"]), collate_fn=collate_samples
    )


def autocast(device: torch.device, scale: Scale) -> torch.autocast:
    """The autocast Lightning's ``precision`` runs the step in (off for ``"32-true"``)."""
    bf16 = scale.precision == "bf16-mixed"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def views_for(name: str, size: int) -> torch.nn.Module:
    """Method ``name``'s view preset at ``size`` px; multi-crop local crops at 96/224 of it,
    rounded to a multiple of 16 (the ViT patch)."""
    if RECIPES[name] is MultiCrop:
        local = 16 * max(1, round(size * 96 / 224 / 16))
        return recipe_by_name(name, global_size=size, local_size=local)
    return recipe_by_name(name, size=size)


def build_method(name: str, backbone: str, scale: Scale, **options: Any) -> SSLMethod:
    """Method ``name`` on ``backbone`` at the scale's view size and heads; ``options``: more
    :class:`~ssl4gie.methods.base.SSLMethod` arguments (the fast-path switches)."""
    kwargs: dict[str, Any] = {"views": views_for(name, scale.size)}
    if backbone.startswith("vit"):
        kwargs["backbone_kwargs"] = {"img_size": scale.size}
    heads = QUARTER_HEADS[name] if scale.heads == "quarter" else {}
    return METHODS[name](backbone, **kwargs, **heads, **options)


def pretrain_inputs(size: int) -> dict[str, dict[str, int | None]]:
    """The two pretraining inputs for ``size``-px views, by name, as ``PretrainDataModule``
    arguments: ``fit <m>``, aspect-true frames with longer side ``m`` = 16/7 of the view (512
    for 224, the shipped configs'), and ``squash <s>``, the old input, every frame squashed to
    ``s`` x ``s`` = 8/7 of the view (256 for 224)."""
    fit, squash = size * 16 // 7, size * 8 // 7
    return {
        f"fit {fit}": {"max_size": fit, "size": None},
        f"squash {squash}": {"max_size": None, "size": squash},
    }


def fast_path(backbone: str, scale: Scale) -> dict[str, Any]:
    """The fast-path switches for the scale: channels-last for CNNs on the GPU (the rest is
    ``optimizer_impl="auto"`` and the trainer's precision)."""
    return {"channels_last": scale.name == "gpu" and not backbone.startswith("vit")}


def uint8_batch(scale: Scale, device: torch.device, size: int | None = None) -> torch.Tensor:
    """Random uint8 images ``[batch, 3, size, size]`` on ``device`` (default: the view size)."""
    side = size or scale.size
    return torch.randint(0, 256, (scale.batch, 3, side, side), dtype=torch.uint8, device=device)


def count_flops(call: Callable[[], object]) -> int:
    """FLOPs of one ``call()`` (matrix multiplications and convolutions, forward and backward),
    by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def peak_tflops(device: torch.device, scale: Scale) -> float | None:
    """The device's dense bf16 peak, for model FLOP utilisation; None on CPU, unknown GPUs or
    fp32 runs."""
    if device.type != "cuda" or scale.precision != "bf16-mixed":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def hardware(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {
        "cpu": _cpu_model(),
        "cpu_cores": cores,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "gpu": None,
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info |= {"gpu": properties.name, "gpu_memory_gib": round(properties.total_memory / 2**30)}
        info["cuda"] = torch.version.cuda
    return info


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def format_value(value: Any, fmt: str) -> str:
    """``value`` with ``fmt`` (e.g. ``"{:.1f}"``); ``-`` for a missing one."""
    if value is None:
        return "-"
    return fmt.format(value) if isinstance(value, int | float) else str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    """``rows`` as an aligned text table with ``columns``."""
    cells = [[header for _, header, _ in columns]]
    cells += [[format_value(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))


def description(doc: str) -> str:
    """A script's docstring without its usage lines (the indented paragraphs)."""
    paragraphs = doc.strip().split("\n\n")
    kept = [text for text in paragraphs if not text.startswith("    ")]
    return "\n\n".join(kept)


def finish(
    benchmark: str,
    title: str,
    args: argparse.Namespace,
    scale: Scale,
    device: torch.device,
    rows: list[dict[str, Any]],
    columns: Sequence[Column],
    notes: Sequence[str] = (),
    doc: str = "",
    show: bool = True,
) -> None:
    """Print the table (unless not ``show``: a partial result saved on the way) and, with
    ``--json``, write it with the hardware, the settings and the script's ``doc`` (what the
    report shows above the table)."""
    if show:
        print(f"\n{title} [{scale.name} scale, {device.type}]")
        print_table(rows, columns)
        for note in notes:
            print(f"  note: {note}")
    if args.json is None:
        return
    payload = {
        "benchmark": benchmark,
        "title": title,
        "description": description(doc),
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(device),
        "scale": asdict(scale),
        "columns": [list(column) for column in columns],
        "rows": rows,
        "notes": list(notes),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=1))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, None when either is missing."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator
