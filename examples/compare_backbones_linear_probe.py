r"""Compare two backbones with a linear probe.

Freezes each backbone, trains only a linear classifier on its features (`mode="linear"`; a
non-affine batch norm before it for ViTs, as MAE's probe) on HyperKvasir's anatomical
landmarks, and compares the test scores of the best validation epoch. Add
`--label-fraction 0.1` for the 10 % label regime (a stratified subset of the training labels).

    python examples/compare_backbones_linear_probe.py --data data/hyper-kvasir \
        --backbones resnet50-barlow-hk resnet50-supervised-in1k        # a real run
    python examples/compare_backbones_linear_probe.py --smoke          # synthetic, seconds

Writes `results.json` and `comparison.png` (test macro F1 and accuracy per backbone).
"""

# %%
import argparse
import json
from pathlib import Path

import lightning as L
import matplotlib
import torch
from _smoke import keep_caches_under, smoke_requested, synthetic, tiny_zoo_entry
from lightning.pytorch.loggers import CSVLogger

from ssl4gie.data.datamodules import ClassificationDataModule
from ssl4gie.tasks import ClassificationTask

matplotlib.use("Agg")
import matplotlib.pyplot as plt

parser = argparse.ArgumentParser(description="Linear probes of two backbones on HyperKvasir.")
parser.add_argument("--data", help="the hyper-kvasir folder (labeled-images inside)")
parser.add_argument("--task", default="landmarks", choices=["landmarks", "findings"])
parser.add_argument(
    "--backbones", nargs=2, default=["resnet50-barlow-hk", "resnet50-supervised-in1k"]
)
parser.add_argument("--label-fraction", type=float, default=None, help="e.g. 0.1 or 0.01")
parser.add_argument("--size", type=int, default=224)
parser.add_argument("--batch-size", type=int, default=48)
parser.add_argument("--epochs", type=int, default=50)
parser.add_argument("--workers", type=int, default=None, help="loader workers")
parser.add_argument("--out", default="runs/examples/compare_backbones_linear_probe")
parser.add_argument("--smoke", action="store_true", help="synthetic data, tiny runs")
args, _ = parser.parse_known_args()
out = Path(args.out)

# %% A smoke run: synthetic HyperKvasir, a random ResNet-18 zoo entry against timm's resnet18.
if smoke_requested(args.smoke):
    keep_caches_under(out)
    args.data = synthetic("hyperkvasir-labeled", out / "data", n=92)
    args.backbones = [tiny_zoo_entry(size=32), "resnet18"]
    args.size, args.batch_size, args.epochs, args.workers = 32, 8, 1, 0
if not args.data:
    parser.error("give --data (or --smoke)")

# %% [markdown]
# ## One probe per backbone
# Same data, split and seed for both; class-weighted cross-entropy (SSL4GIE), AdamW 1e-4, the
# checkpoint of the best validation macro F1 is tested.

# %%
data = ClassificationDataModule(
    str(args.data), options={"task": args.task}, size=args.size, batch_size=args.batch_size,
    label_fraction=args.label_fraction, num_workers=args.workers,
)  # fmt: skip
results = {}
for backbone in args.backbones:
    L.seed_everything(0, verbose=False)
    probe = ClassificationTask(backbone, num_classes=data.num_classes, mode="linear")
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator="auto",
        devices=1,
        precision="bf16-mixed" if torch.cuda.is_available() else "32-true",
        logger=CSVLogger(out, name=backbone.replace("/", "_"), version=""),
        default_root_dir=out,
    )
    trainer.fit(probe, datamodule=data)
    (tested,) = trainer.test(probe, datamodule=data, ckpt_path="best", verbose=False)
    results[backbone] = {"f1": tested["test_f1"], "accuracy": tested["test_accuracy"]}

# %% [markdown]
# ## Compare

# %%
(out / "results.json").write_text(json.dumps(results, indent=2))
print(f"{'backbone':<32}{'test macro F1':>14}{'accuracy':>10}")
for backbone, scores in results.items():
    print(f"{backbone:<32}{scores['f1']:>14.3f}{scores['accuracy']:>10.3f}")
figure, axis = plt.subplots(figsize=(6, 3.2))
width = 0.35
for i, metric in enumerate(("f1", "accuracy")):
    values = [scores[metric] for scores in results.values()]
    axis.bar([j + i * width for j in range(len(results))], values, width, label=metric)
axis.set_xticks([j + width / 2 for j in range(len(results))], list(results), fontsize=8)
axis.set(ylim=(0, 1), title=f"linear probe, {args.task} (test)")
axis.legend(fontsize=8)
figure.tight_layout()
figure.savefig(out / "comparison.png", dpi=120)
print(f"wrote {out / 'results.json'} and {out / 'comparison.png'}")
