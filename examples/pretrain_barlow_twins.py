r"""Pretrain Barlow Twins on your own folder of endoscopy frames.

The Python version of `ssl4gie pretrain fit --config pretrain/barlow_twins_resnet50_hk` with
`--data.sources '[{layout: folder, root: <your frames>}]'`: any folder of images (searched
recursively, unreadable files skipped), views made on the training device, the official
Barlow Twins recipe scaled to your batch, and at the end an export that loads by path (and, once
published, by name).

    python examples/pretrain_barlow_twins.py --images /data/our-colonoscopy-frames --fov \
        --backbone resnet50 --batch-size 256 --epochs 100 --devices 8   # a real run
    python examples/pretrain_barlow_twins.py --smoke                     # synthetic, seconds
"""

# %%
import argparse
from pathlib import Path

import lightning as L
from _smoke import keep_caches_under, smoke_requested, synthetic
from lightning.pytorch.loggers import CSVLogger

import ssl4gie
from ssl4gie.data.datamodules import PretrainDataModule, Source
from ssl4gie.methods import BarlowTwins
from ssl4gie.transforms import TwoViews

parser = argparse.ArgumentParser(description="Barlow Twins on a folder of images.")
parser.add_argument("--images", help="folder of frames, searched recursively")
parser.add_argument("--backbone", default="resnet50", help="timm name, or a zoo name to continue")
parser.add_argument(
    "--max-size", type=int, default=512, help="longer side of the aspect-true frames (loaders)"
)
parser.add_argument("--view-size", type=int, default=224, help="size of the crops (views)")
parser.add_argument("--fov", action="store_true", help="crop inside the endoscope's field of view")
parser.add_argument("--batch-size", type=int, default=256, help="per process")
parser.add_argument("--epochs", type=int, default=100)
parser.add_argument("--devices", type=int, default=1, help="GPUs (DDP when > 1)")
parser.add_argument("--workers", type=int, default=None, help="loader workers per process")
parser.add_argument("--name", default="resnet50-barlow-ours", help="zoo name for the export")
parser.add_argument("--out", default="runs/examples/pretrain_barlow_twins", help="output folder")
parser.add_argument("--smoke", action="store_true", help="synthetic data, a tiny run")
args, _ = parser.parse_known_args()
out = Path(args.out)
method_args = {}  # the official defaults (projector 8192-8192-8192, lambda 0.0051)

# %% A smoke run: 16 synthetic frames, a ResNet-18 with a small projector, one epoch at 32 px.
if smoke_requested(args.smoke):
    keep_caches_under(out)
    args.images = synthetic("hyperkvasir-unlabeled", out / "data", n=16)
    args.backbone, args.name = "resnet18", "resnet18-barlow-smoke"
    args.max_size, args.view_size, args.batch_size, args.epochs, args.workers = 48, 32, 8, 1, 0
    method_args = {"projector_dims": [64, 64], "warmup_epochs": 1}
if not args.images:
    parser.error("give --images (or --smoke)")

# %% [markdown]
# ## Method and data
# Views are Barlow Twins' (`TwoViews.barlow_twins`), made batched on the device; `fov=True`
# keeps crops inside the field of view and zeroes the black border. The learning rate is the
# recipe's 0.2 per 256 images times the global batch (LARS, 10 warm-up epochs, cosine).

# %%
views = TwoViews.barlow_twins(size=args.view_size, fov=args.fov)
method = BarlowTwins(args.backbone, views=views, **method_args)
data = PretrainDataModule(
    Source("folder", str(args.images)),
    max_size=args.max_size,
    batch_size=args.batch_size,
    num_workers=args.workers,
)
print(f"{type(method).__name__} on {args.backbone}: recipe {method.recipe}")

# %% [markdown]
# ## Train
# One process per GPU under DDP (batch norm and the loss see the global batch); bf16 on GPUs.
# Logs (`train/loss`, collapse metrics, learning rate) go to `<out>/logs/metrics.csv`.

# %%
L.seed_everything(0, verbose=False)
trainer = L.Trainer(
    max_epochs=args.epochs,
    accelerator="auto",
    devices=args.devices,
    strategy="ddp" if args.devices > 1 else "auto",
    precision="bf16-mixed" if L.fabric.accelerators.CUDAAccelerator.is_available() else "32-true",
    logger=CSVLogger(out, name="logs", version=""),
    default_root_dir=out,
    enable_checkpointing=False,  # one checkpoint at the end, below
    log_every_n_steps=1,
)
trainer.fit(method, datamodule=data)
checkpoint = out / "last.ckpt"
trainer.save_checkpoint(checkpoint)

# %% [markdown]
# ## Export the encoder
# A timm-format folder (`model.safetensors`, `config.json`, model card): it loads with
# `ssl4gie.load_backbone(folder)` and with plain `timm.create_model("local-dir:<folder>")`.
# Publish it with `ssl4gie zoo publish` (see `export_and_publish.py`).

# %%
if trainer.is_global_zero:
    export = out / "export"
    if export.exists():
        import shutil

        shutil.rmtree(export)
    ssl4gie.export_backbone(checkpoint, export, name=args.name)
    encoder = ssl4gie.load_backbone(export)
    loss = float(trainer.callback_metrics["train/loss_epoch"])
    print(f"final epoch loss {loss:.3f}; exported {encoder.num_features}-d encoder to {export}")
