"""The GPU fast path, one switch at a time: Barlow Twins on the CNN and MoCo v3 on the ViT,
each switch turned on alone and all together, against everything off; then the loader
switches of the data pipeline.

    python benchmarks/fast_path.py [--gpu] [--compile] [--json out]

Step switches (data pipeline excluded, ``Trainer.fit`` on a ready uint8 batch): bf16 autocast
(``precision="bf16-mixed"``, GPU only), ``channels_last`` (CNNs), the optimiser kernel
(``optimizer_impl``: ``loop`` / ``foreach`` / ``fused``; timm's LARS has no fused kernel) and,
with ``--compile``, ``torch.compile``. Data switches (pipeline included, Barlow Twins on the CNN,
short epochs so that epoch boundaries count): JPEG decoding on the device, pinned memory with
non-blocking copies (CUDA only), persistent workers.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import _common
import torch
from torch.utils.data import DataLoader

from ssl4gie.data.datamodules import PretrainDataModule, Source
from ssl4gie.data.synthetic import synthesize

COLUMNS: list[_common.Column] = [
    ("config", "configuration", "{}"),
    ("switch", "switch", "{}"),
    ("images_per_s", "images/s", "{:.1f}"),
    ("step_s", "step s", "{:.3f}"),
    ("speedup", "x off", "{:.2f}"),
    ("error", "not run", "{}"),
]
OFF = {"optimizer_impl": "loop", "channels_last": False, "compile": False}


def step_switches(
    backbone: str, optimizer: str, bf16: bool, compile_: bool
) -> dict[str, dict[str, Any]]:
    """Switch name -> method options (``"precision"``: the trainer's), from all off; ``bf16``
    where the device computes in it (a CPU without bf16 instructions only emulates it)."""
    cnn = not backbone.startswith("vit")
    kernel = "foreach" if optimizer == "lars" else "fused"  # timm's LARS has no fused kernel
    switches: dict[str, dict[str, Any]] = {"all off": {}}
    if bf16:
        switches["bf16"] = {"precision": "bf16-mixed"}
    if cnn:
        switches["channels_last"] = {"channels_last": True}
    switches["foreach"] = {"optimizer_impl": "foreach"}
    if kernel == "fused":
        switches["fused"] = {"optimizer_impl": "fused"}
    if compile_:
        switches["compile"] = {"compile": True}
    switches["all on"] = {"channels_last": cnn, "optimizer_impl": kernel, "compile": compile_}
    switches["all on"] |= {"precision": "bf16-mixed"} if bf16 else {}
    return switches


def step_seconds(name: str, backbone: str, options: dict, scale, device) -> float:
    """Median seconds of the Lightning step of ``name`` with ``options`` on a ready batch."""
    options = dict(options)
    scale = replace(scale, precision=options.pop("precision", "32-true"))
    method = _common.build_method(name, backbone, scale, **(OFF | options))
    batch = {"image": _common.uint8_batch(scale, device)}
    clock = _common.StepClock(device, {})
    total = scale.warmup + scale.steps
    trainer = _common.trainer(device, scale, total, callbacks=[clock])
    trainer.fit(method, train_dataloaders=_common.repeat_loader(batch, total))
    return clock.median(scale.warmup)["lightning"]


class SwitchedData(PretrainDataModule):
    """A :class:`PretrainDataModule` whose loader's ``pin_memory`` and ``persistent_workers``
    are set here rather than by the defaults (pinned on CUDA, persistent with workers)."""

    def __init__(self, *args: Any, pin_memory: bool, persistent: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pin, self.persistent = pin_memory, persistent

    def train_dataloader(self) -> DataLoader:
        default = super().train_dataloader()
        return DataLoader(
            default.dataset,
            batch_size=default.batch_size,
            sampler=default.sampler,
            drop_last=default.drop_last,
            num_workers=default.num_workers,
            collate_fn=default.collate_fn,
            pin_memory=self.pin,
            persistent_workers=self.persistent and default.num_workers > 0,
        )


def data_switches(device: torch.device) -> dict[str, dict[str, bool]]:
    """Switch name -> loader settings, from ssl4gie's defaults."""
    cuda = device.type == "cuda"
    defaults = {"decode_on_device": False, "pin_memory": cuda, "persistent": True}
    switches = {"defaults": defaults, "decode_on_device": defaults | {"decode_on_device": True}}
    if cuda:
        switches["no pinned memory"] = defaults | {"pin_memory": False}
    switches["no persistent workers"] = defaults | {"persistent": False}
    return switches


def data_images_per_second(root: Path, repeats: int, loader: dict, backbone: str, scale, device):
    """Images/s of Barlow Twins' ``Trainer.fit`` with the ``loader`` settings, over epochs of
    a third of the timed steps (so that every run crosses epoch boundaries)."""
    method = _common.build_method("barlow_twins", backbone, scale)
    fit, _ = _common.pretrain_inputs(scale.size).values()  # the aspect-true input
    data = SwitchedData(
        [Source("hyperkvasir-unlabeled", str(root))] * repeats,
        **fit,
        batch_size=scale.batch,
        num_workers=scale.workers,
        pin_memory=loader["pin_memory"],
        persistent=loader["persistent"],
        decode_on_device=loader["decode_on_device"],
    )
    clock = _common.StepClock(device, {})
    epoch = max(2, scale.steps // 3)
    total = scale.warmup + scale.steps
    trainer = _common.trainer(
        device, scale, total, callbacks=[clock], limit_train_batches=epoch, max_epochs=-1
    )
    trainer.fit(method, datamodule=data)
    return clock.images_per_second(scale.batch, scale.warmup)


def step_rows(name: str, backbone: str, args, scale, device) -> list[dict[str, Any]]:
    """One row per step switch of ``name`` on ``backbone``, speedups against all off."""
    optimizer = _common.build_method(name, backbone, scale).recipe.optimizer
    rows = []
    bf16 = device.type == "cuda"
    for switch, options in step_switches(backbone, optimizer, bf16, args.compile).items():
        row: dict[str, Any] = {"config": f"{name} {backbone}", "switch": switch}
        try:
            row["step_s"] = step_seconds(name, backbone, options, scale, device)
            row["images_per_s"] = scale.batch / row["step_s"]
        except (RuntimeError, ValueError) as err:  # e.g. a kernel this torch build lacks
            row["error"] = str(err).splitlines()[0][:80]
        rows.append(row)
    off = rows[0].get("step_s")
    return [row | {"speedup": _common.ratio(off, row.get("step_s"))} for row in rows]


def data_rows(backbone: str, scale, device) -> list[dict[str, Any]]:
    """One row per loader switch, speedups against ssl4gie's defaults."""
    needed = scale.batch * (scale.warmup + scale.steps)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        frames = min(256, needed)
        root = synthesize(
            "hyperkvasir-unlabeled", Path(tmp) / "hk", frames, scale.frame_size, progress=False
        )
        repeats = -(-needed // frames)
        for switch, loader in data_switches(device).items():
            rate = data_images_per_second(root, repeats, loader, backbone, scale, device)
            rows.append({"config": f"pipeline barlow_twins {backbone}", "switch": switch})
            rows[-1] |= {"images_per_s": rate, "step_s": scale.batch / rate}
    base = rows[0]["images_per_s"]
    return [row | {"speedup": row["images_per_s"] / base} for row in rows]


def main() -> None:
    args = _common.parser(__doc__.splitlines()[0]).parse_args()
    scale, device = _common.setup(args)
    cnn = next((b for b in scale.backbones if not b.startswith("vit")), None)
    vit = next((b for b in scale.backbones if b.startswith("vit")), None)
    rows = []
    for name, backbone in (("barlow_twins", cnn), ("mocov3", vit)):
        if backbone is not None:
            rows += step_rows(name, backbone, args, scale, device)
    if cnn is not None:
        rows += data_rows(cnn, _common.pipeline_scale(scale), device)
    notes = [
        "x off: speedup over all switches off (step rows) or over ssl4gie's loader defaults",
        "non-blocking copies need pinned memory: Lightning copies with non_blocking on CUDA",
    ]
    if device.type == "cpu":
        notes.append("no bf16 rows on CPU: without bf16 instructions it is emulated (slower)")
    title = "Fast-path switches, one at a time"
    _common.finish("fast_path", title, args, scale, device, rows, COLUMNS, notes, doc=__doc__)


if __name__ == "__main__":
    main()
