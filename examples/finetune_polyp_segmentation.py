r"""Fine-tune polyp segmentation from a zoo backbone and look at the predictions.

The SSL4GIE segmentation protocol in Python (what `ssl4gie finetune fit --config
finetune/polyp_segmentation_kvasir` runs): DeepLabV3+ on a CNN backbone (DPT on a ViT), soft
Dice loss, AdamW 1e-4 with reduce-on-plateau, a seeded 80/10/10 split. Ends with the test
metrics of the final weights and a PNG of test images, their masks and the predictions.

    python examples/finetune_polyp_segmentation.py --data data/Kvasir-SEG \
        --backbone resnet50-barlow-hk --epochs 200                      # a real run (GPU)
    python examples/finetune_polyp_segmentation.py --smoke              # synthetic, seconds
"""

# %%
import argparse
import json
from pathlib import Path

import lightning as L
import torch
from _smoke import keep_caches_under, smoke_requested, synthetic, tiny_zoo_entry
from lightning.pytorch.loggers import CSVLogger

from ssl4gie.data.datamodules import SegmentationDataModule
from ssl4gie.tasks import SegmentationTask
from ssl4gie.viz import save_grid

parser = argparse.ArgumentParser(description="Fine-tune polyp segmentation, save predictions.")
parser.add_argument("--data", help="dataset folder (Kvasir-SEG or CVC-ClinicDB as released)")
parser.add_argument("--layout", default="kvasir-seg", choices=["kvasir-seg", "cvc-clinicdb"])
parser.add_argument("--backbone", default="resnet50-barlow-hk", help="zoo name, timm name, ...")
parser.add_argument("--decoder", default="deeplabv3plus", choices=["deeplabv3plus", "unet", "fpn"])
parser.add_argument("--size", type=int, default=224)
parser.add_argument("--batch-size", type=int, default=48)
parser.add_argument("--epochs", type=int, default=200)
parser.add_argument("--workers", type=int, default=None, help="loader workers")
parser.add_argument("--out", default="runs/examples/finetune_polyp_segmentation")
parser.add_argument("--smoke", action="store_true", help="synthetic data, a tiny run")
args, _ = parser.parse_known_args()
out = Path(args.out)

# %% A smoke run: 20 synthetic Kvasir-SEG frames, a random ResNet-18 zoo entry, one epoch.
if smoke_requested(args.smoke):
    keep_caches_under(out)
    args.data = synthetic("kvasir-seg", out / "data", n=20)
    args.backbone, args.decoder = tiny_zoo_entry(size=32), "fpn"
    args.size, args.batch_size, args.epochs, args.workers = 32, 4, 1, 0
if not args.data:
    parser.error("give --data (or --smoke)")

# %% [markdown]
# ## Task and data
# `SegmentationTask` loads the backbone by name through the zoo and puts the decoder on it;
# augmentation (flips, crops, colour) moves image and mask together on the device.

# %%
L.seed_everything(0, verbose=False)
task = SegmentationTask(args.backbone, num_classes=2, decoder=args.decoder)
data = SegmentationDataModule(
    str(args.data), layout=args.layout, size=args.size, batch_size=args.batch_size,
    num_workers=args.workers,
)  # fmt: skip

# %% [markdown]
# ## Train and test
# Validation Dice drives the learning-rate schedule and picks the best checkpoint, which `test`
# scores; every validation epoch also saves `predictions/val_epoch<NNN>.png` in the log folder.

# %%
trainer = L.Trainer(
    max_epochs=args.epochs,
    accelerator="auto",
    devices=1,
    precision="bf16-mixed" if torch.cuda.is_available() else "32-true",
    logger=CSVLogger(out, name="logs", version=""),
    default_root_dir=out,
    log_every_n_steps=1,
)
trainer.fit(task, datamodule=data)
(metrics,) = trainer.test(task, datamodule=data, ckpt_path="best", verbose=False)
print(json.dumps({name: round(value, 4) for name, value in metrics.items()}, indent=2))

# %% [markdown]
# ## Show predictions on test images
# The batch goes through the task's own eval path: normalisation (no augmentation in eval
# mode), logits `[B, 1, H, W]`, foreground where the logit is positive.

# %%
task.eval()
with torch.no_grad():
    batch = task.on_after_batch_transfer(next(iter(data.test_dataloader())), 0)
    logits = task(batch["image"])  # [B, 1, H, W]; picture_rows takes foreground where > 0
rows = task.picture_rows(batch, logits)
save_grid(rows, out / "predictions.png", task.picture_titles)
print(f"wrote {out / 'predictions.png'}")
