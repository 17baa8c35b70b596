"""Pretraining step of each SSL method x backbone, data pipeline excluded: ssl4gie's Lightning
step against the bare model, a plain-PyTorch loop and lightly, interleaved in the same run.

    python benchmarks/pretrain_steps.py [--gpu] [--methods ...] [--backbones ...] [--json out]

Every candidate starts from the same uint8 batch already on the device and makes the method's
views on the device:

- ``lightning``: ``Trainer.fit`` (views in ``on_after_batch_transfer``, the method's hooks,
  logging, schedules, optimiser step, momentum update), from the end of one batch to the next;
- ``fwd_bwd``: the bare model, forward and backward of backbone, heads and loss (no optimiser);
- ``plain``: a plain loop of the same model, loss and optimiser, plus the momentum update;
- ``lightly``: lightly's implementation of the method (Barlow Twins, SimCLR, BYOL);
- ``views``: the views alone.

Also FLOPs per step (model forward and backward; ``torch.utils.flop_counter``), the achieved
TFLOP/s and, on a GPU with a known bf16 peak, the model FLOP utilisation (MFU); on a GPU, the
host synchronisations per Lightning step (``torch.cuda.set_sync_debug_mode``).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import _baselines
import _common
import torch
from torch import Tensor

from ssl4gie.errors import InputError
from ssl4gie.methods import METHODS, SSLMethod
from ssl4gie.methods.fast_path import to_channels_last

COLUMNS: list[_common.Column] = [
    ("method", "method", "{}"),
    ("backbone", "backbone", "{}"),
    ("images_per_s", "images/s", "{:.1f}"),
    ("lightning_s", "step s", "{:.3f}"),
    ("views_s", "views s", "{:.3f}"),
    ("fwd_bwd_s", "fwd+bwd s", "{:.3f}"),
    ("plain_s", "plain s", "{:.3f}"),
    ("overhead_vs_fwd_bwd", "step/fwd+bwd-1", "{:+.1%}"),
    ("overhead_vs_plain", "step/plain-1", "{:+.1%}"),
    ("lightly_s", "lightly s", "{:.3f}"),
    ("speedup_vs_lightly", "x lightly", "{:.2f}"),
    ("gflop", "GFLOP/step", "{:.1f}"),
    ("tflops", "TFLOP/s", "{:.3f}"),
    ("mfu", "MFU", "{:.1%}"),
    ("syncs_per_step", "syncs/step", "{:.1f}"),
    ("error", "not run", "{}"),
]
SYNC_WARNING = "called a synchronizing CUDA operation"


class SyncCounter(_common.StepClock):
    """A :class:`~_common.StepClock` that, on CUDA, also counts the host synchronisations inside
    Lightning's batches: the sync debug mode warns during them only (not during the other
    candidates nor the clock's own syncs); ``caught`` is the list the warnings are recorded in.
    """

    def __init__(self, device: torch.device, others: dict[str, Any]) -> None:
        super().__init__(device, others)
        self.syncs: list[int] = []
        self.caught: list[warnings.WarningMessage] = []

    def _debug(self, mode: int | str) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode(mode)

    def on_train_start(self, trainer, module) -> None:
        super().on_train_start(trainer, module)
        self._debug("warn")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._debug(0)
        self.syncs.append(sum(SYNC_WARNING in str(w.message) for w in self.caught))
        self.caught.clear()
        super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)
        self._debug("warn")

    def on_train_end(self, trainer, module) -> None:
        self._debug(0)


def candidates(
    name: str, method: SSLMethod, images: Tensor, scale: _common.Scale, device: torch.device
) -> dict[str, Any]:
    """The steps timed between Lightning's batches, on ``method`` itself (plain, fwd+bwd) or on
    lightly's version of it; the plain step uses the Lightning run's own optimiser."""
    autocast = _common.autocast(device, scale)

    def views() -> list[Tensor]:
        made = method.views(images)
        return to_channels_last(made) if method.channels_last else made

    def fwd_bwd() -> None:
        with autocast:
            loss, _ = method.ssl_loss(views())
        loss.backward()
        method.zero_grad(set_to_none=True)

    @functools.cache
    def plain_step() -> Callable[[list[Tensor]], None]:  # once the trainer has the optimiser
        return _baselines.plain_step(method, method.trainer.optimizers[0], autocast)

    steps = {"views": views, "fwd_bwd": fwd_bwd, "plain": lambda: plain_step()(views())}
    if name in _baselines.LIGHTLY_METHODS:
        lightly = _baselines.LightlyModel(name, method).to(device)
        lightly_step = _baselines.lightly_step(lightly, method.kind, autocast)
        steps["lightly"] = lambda: lightly_step(views())
    return steps


def model_flops(method: SSLMethod, images: Tensor, scale, device: torch.device) -> int:
    """FLOPs of the model's forward and backward on one batch of views (views not counted)."""
    views = method.views(images)

    def step() -> None:
        with _common.autocast(device, scale):
            loss, _ = method.ssl_loss(views)
        loss.backward()

    flops = _common.count_flops(step)
    method.zero_grad(set_to_none=True)
    return flops


def measure(name: str, backbone: str, scale: _common.Scale, device: torch.device) -> dict:
    """One row: the interleaved medians, ratios, FLOPs, MFU and syncs of ``name`` x ``backbone``."""
    row: dict[str, Any] = {"method": name, "backbone": backbone, "batch": scale.batch}
    try:
        method = _common.build_method(name, backbone, scale, **_common.fast_path(backbone, scale))
    except InputError as err:  # e.g. MAE on a ResNet
        return row | {"error": str(err).split(";")[0]}
    method.to(device)
    images = _common.uint8_batch(scale, device)
    flops = model_flops(method, images, scale, device)
    clock = SyncCounter(device, candidates(name, method, images, scale, device))
    total = scale.warmup + scale.steps
    trainer = _common.trainer(device, scale, total, callbacks=[clock])
    with warnings.catch_warnings(record=True) as clock.caught:
        warnings.simplefilter("always")
        trainer.fit(method, train_dataloaders=_common.repeat_loader({"image": images}, total))
    seconds = clock.median(scale.warmup)
    step = seconds["lightning"]
    peak = _common.peak_tflops(device, scale)
    row |= {f"{key}_s": value for key, value in seconds.items()}
    row |= {
        "images_per_s": scale.batch / step,
        "overhead_vs_fwd_bwd": step / seconds["fwd_bwd"] - 1,
        "overhead_vs_plain": step / seconds["plain"] - 1,
        "speedup_vs_lightly": _common.ratio(seconds.get("lightly"), step),
        "gflop": flops / 1e9,
        "tflops": flops / step / 1e12,
        "mfu": _common.ratio(flops / step / 1e12, peak),
        "syncs_per_step": (
            sum(clock.syncs[scale.warmup :]) / scale.steps if device.type == "cuda" else None
        ),
    }
    return row


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS), choices=sorted(METHODS))
    args = parser.parse_args()
    scale, device = _common.setup(args)
    rows = []
    for backbone in scale.backbones:
        for name in args.methods:
            try:
                rows.append(measure(name, backbone, scale, device))
            except torch.OutOfMemoryError:
                error = f"out of GPU memory at batch {scale.batch}: rerun it with a smaller --batch"
                rows.append({"method": name, "backbone": backbone, "error": error})
            if device.type == "cuda":
                torch.cuda.empty_cache()
    notes = [
        "medians of the timed steps; every candidate makes the views from the same uint8 batch",
        "step/fwd+bwd-1: what the optimiser, the hooks and Lightning add to the bare model",
    ]
    notes += [] if _baselines.HAVE_LIGHTLY else [_baselines.LIGHTLY_MISSING]
    title = "Pretraining step, data pipeline excluded"
    _common.finish("pretrain_steps", title, args, scale, device, rows, COLUMNS, notes, doc=__doc__)


if __name__ == "__main__":
    main()
