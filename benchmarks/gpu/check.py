"""The GPU code paths, each checked once before the benchmarks time them: JPEG decoding on the
device (nvjpeg) against the CPU workers' decoding, the ``decode_on_device`` batch of
``PretrainDataModule``, every method's views on the aspect-true input, one training step of
every method (bf16 and channels-last on a GPU, as the benchmarks run them), and
``torch.compile`` off and on.

    python benchmarks/gpu/check.py [--gpu] [--compile] [--json out]

Each check is a row (``ok`` or what failed); one failing check does not stop the others. A
step feeds the method uint8 canvases and regions decoded from synthetic 720x576 JPEGs (the
aspect-true input), through ``Trainer.fit``. Without ``--gpu`` the same checks run on the CPU
(the dry run of ``benchmarks/gpu/run.sh``); ``--compile`` adds the compile rows there (slow).
"""

from __future__ import annotations

import collections
import functools
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # benchmarks/: _common

import _common
import torch

from ssl4gie.data.datamodules import PretrainDataModule, Source
from ssl4gie.data.decode import decode_fit_batch, fit_to_canvas, read_image
from ssl4gie.data.synthetic import synthesize
from ssl4gie.errors import InputError
from ssl4gie.methods import METHODS

COLUMNS: list[_common.Column] = [
    ("check", "check", "{}"),
    ("result", "result", "{}"),
    ("seconds", "s", "{:.1f}"),
    ("detail", "detail", "{}"),
]
FRAMES = 8  # synthetic JPEGs decoded by both paths
MAX_DIFF = 4.0  # mean |nvjpeg - CPU| in uint8 levels: decoders and resize kernels round apart


def row(check: str, call: Callable[[], str]) -> dict[str, Any]:
    """Run ``call`` (it returns the detail); ``ok`` or the error's first line, with seconds."""
    start = time.perf_counter()
    try:
        detail, result = call(), "ok"
    except Exception as err:
        traceback.print_exc()
        detail, result = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}", "FAILED"
    seconds = time.perf_counter() - start
    print(f"[check] {check}: {result} ({seconds:.1f} s) {detail}", flush=True)
    return {"check": check, "result": result, "seconds": seconds, "detail": detail}


def decode_matches_cpu(paths: list[Path], max_size: int, device: torch.device) -> str:
    """``decode_fit_batch`` on ``device`` against ``fit_to_canvas`` of the CPU decoder."""
    encoded = [torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8) for path in paths]
    canvases, regions = decode_fit_batch(encoded, max_size, device)
    expected = [fit_to_canvas(read_image(path), max_size) for path in paths]
    assert canvases.device.type == device.type and canvases.dtype == torch.uint8
    assert canvases.shape == (len(paths), 3, max_size, max_size), tuple(canvases.shape)
    assert torch.equal(regions.cpu(), torch.stack([region for _, region in expected]))
    diff = (canvases.cpu().float() - torch.stack([c for c, _ in expected]).float()).abs().mean()
    assert diff <= MAX_DIFF, f"mean |difference| {diff:.2f} > {MAX_DIFF} uint8 levels"
    return f"{len(paths)} frames, regions equal, mean |difference| {diff:.2f} levels"


def datamodule_batch(root: Path, max_size: int, batch: int, device: torch.device) -> str:
    """One ``decode_on_device`` batch of ``PretrainDataModule``, moved to ``device``."""
    data = PretrainDataModule([Source("hyperkvasir-unlabeled", str(root))], max_size=max_size,
                              batch_size=batch, num_workers=0, decode_on_device=True)  # fmt: skip
    data.setup("fit")
    moved = data.transfer_batch_to_device(next(iter(data.train_dataloader())), device, 0)
    image, region = moved["image"], moved["region"]
    assert image.device.type == device.type and image.shape[1:] == (3, max_size, max_size)
    assert region.shape == (len(image), 4) and region.device.type == device.type
    return f"image {tuple(image.shape)} {image.dtype}, region {tuple(region.shape)}"


def views_on_input(name: str, canvases: torch.Tensor, regions: torch.Tensor, scale) -> str:
    """Method ``name``'s views of the canvases: on their device, finite, of the recipe's sizes."""
    views = _common.views_for(name, scale.size).to(canvases.device)(canvases, regions)
    for view in views:
        assert view.device == canvases.device and torch.isfinite(view).all()
    shapes = collections.Counter(f"{v.shape[-2]}x{v.shape[-1]}" for v in views)
    return ", ".join(f"{count} view(s) {shape}" for shape, count in shapes.items())


def train_step(name: str, backbone: str, batch: dict, scale, device, **options: Any) -> str:
    """Two ``Trainer.fit`` steps of ``name`` on the canvases; the loss must be finite."""
    method = _common.build_method(name, backbone, scale, **options)
    trainer = _common.trainer(device, scale, 2)
    trainer.fit(method, train_dataloaders=_common.repeat_loader(batch, 2))
    loss = trainer.callback_metrics.get("train/loss")
    assert loss is not None and math.isfinite(float(loss)), f"train/loss {loss}"
    switches = [scale.precision] + [key for key, on in options.items() if on is True]
    return f"{backbone}, {', '.join(switches)}, loss {float(loss):.3f}"


def step_rows(batch: dict, scale, device) -> Iterator[dict[str, Any]]:
    """One step of every method, on the first backbone that takes it (CNN, then ViT)."""
    for name in sorted(METHODS):
        for backbone in scale.backbones:
            options = _common.fast_path(backbone, scale)
            try:
                _common.build_method(name, backbone, scale)
            except InputError:
                continue
            step = functools.partial(train_step, name, backbone, batch, scale, device, **options)
            yield row(f"step {name}", step)
            break
        else:
            yield {"check": f"step {name}", "result": "FAILED", "detail": "no backbone"}
        if device.type == "cuda":
            torch.cuda.empty_cache()


def compile_seconds(backbone: str, batch: dict, scale, device, compile_: bool) -> float:
    """Median seconds of Barlow Twins' step after a first (compiling) one."""
    options = _common.fast_path(backbone, scale) | {"compile": compile_}
    method = _common.build_method("barlow_twins", backbone, scale, **options)
    clock = _common.StepClock(device, {})
    trainer = _common.trainer(device, scale, 4, callbacks=[clock])
    trainer.fit(method, train_dataloaders=_common.repeat_loader(batch, 4))
    return clock.median(1)["lightning"]


def compile_row(backbone: str, batch: dict, scale, device) -> dict[str, Any]:
    """Barlow Twins on ``backbone`` with ``torch.compile`` off and on."""

    def both() -> str:
        off = compile_seconds(backbone, batch, scale, device, compile_=False)
        on = compile_seconds(backbone, batch, scale, device, compile_=True)
        return f"barlow_twins {backbone}: step {off:.3f} s off, {on:.3f} s on ({off / on:.2f}x)"

    return row("compile off and on", both)


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--frame-size", type=int, default=576, help="JPEG height (720x576)")
    args = parser.parse_args()
    scale, device = _common.setup(args)
    max_size = next(iter(_common.pretrain_inputs(scale.size).values()))["max_size"]
    batch_size = args.batch or (16 if device.type == "cuda" else 2)
    title, rows = "GPU code paths", []

    def add(found: dict[str, Any]) -> None:
        """Keep rows and save them so far: a check that hangs until the kit's time limit kills
        it loses only itself."""
        rows.append(found)
        _common.finish("gpu_checks", title, args, scale, device, rows, COLUMNS,
                       ["partial: the run stopped here"], doc=__doc__, show=False)  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize("hyperkvasir-unlabeled", Path(tmp) / "hk", FRAMES, args.frame_size,
                          progress=False)  # fmt: skip
        paths = sorted(root.rglob("*.jpg"))
        add(row("decode on device", lambda: decode_matches_cpu(paths, max_size, device)))
        loaded = min(batch_size, FRAMES)  # whole batches of the frames
        check = functools.partial(datamodule_batch, root, max_size, loaded, device)
        add(row("decode_on_device batch", check))
        fitted = [fit_to_canvas(read_image(path), max_size) for path in paths]  # the CPU path
    picks = (torch.arange(batch_size) % len(paths)).tolist()
    batch = {key: torch.stack([fitted[i][k] for i in picks]).to(device)
             for k, key in enumerate(("image", "region"))}  # fmt: skip
    for name in sorted(METHODS):
        add(row(f"views {name}", lambda n=name: views_on_input(n, *batch.values(), scale)))
    for found in step_rows(batch, scale, device):
        add(found)
    cnn = next((b for b in scale.backbones if not b.startswith("vit")), scale.backbones[0])
    if args.compile or device.type == "cuda":
        add(compile_row(cnn, batch, scale, device))
    failed = [r["check"] for r in rows if r["result"] != "ok"]
    notes = [
        f"{FRAMES} synthetic JPEGs {args.frame_size * 5 // 4}x{args.frame_size} (and square), "
        f"fitted to {max_size} px canvases; steps on batches of {batch_size}",
        f"{len(rows) - len(failed)} of {len(rows)} checks passed"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
    ]
    _common.finish("gpu_checks", title, args, scale, device, rows, COLUMNS, notes,
                   doc=__doc__)  # fmt: skip
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
