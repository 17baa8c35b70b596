r"""Extract features with a zoo backbone and plot a 2D embedding.

Loads a pretrained backbone by name (`ssl4gie.load_backbone`) with its own eval preprocessing
(`ssl4gie.load_transforms`), embeds every image of a folder, and plots the first two principal
components of the features, one colour per sub-folder (e.g. HyperKvasir's class folders).

    python examples/extract_features.py --images data/hyper-kvasir/labeled-images \
        --backbone vitb16-mocov3-hk                                     # a real run
    python examples/extract_features.py --smoke                         # synthetic, seconds

Writes `embedding.png` and `features.pt` (features `[N, D]` and the image paths) to `--out`.
"""

# %%
import argparse
from pathlib import Path

import matplotlib
import torch
from _smoke import keep_caches_under, smoke_requested, synthetic, tiny_zoo_entry

import ssl4gie
from ssl4gie.data.datasets import ImageFolderDataset

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

parser = argparse.ArgumentParser(description="Embed a folder of images, plot a 2D PCA.")
parser.add_argument("--images", help="folder of images, searched recursively")
parser.add_argument("--backbone", default="vitb16-mocov3-hk", help="zoo name, hf-hub: id, folder")
parser.add_argument("--out", default="runs/examples/extract_features", help="output folder")
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--smoke", action="store_true", help="synthetic data and a tiny backbone")
args, _ = parser.parse_known_args()  # known args only: Jupyter passes its own
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# %% A smoke run swaps in synthetic HyperKvasir images and a random ResNet-18 zoo entry.
if smoke_requested(args.smoke):
    keep_caches_under(out)
    args.images = synthetic("hyperkvasir-labeled", out / "data", n=46) / "labeled-images"
    args.backbone = tiny_zoo_entry(size=32)
if not args.images:
    parser.error("give --images (or --smoke)")

# %% [markdown]
# ## Load the backbone and its preprocessing
# `encoder(x)` maps normalised images `[B, 3, S, S]` to pooled features `[B, D]`;
# `preprocess` resizes, centre-crops and normalises as the weights expect.

# %%
encoder = ssl4gie.load_backbone(args.backbone)
preprocess = ssl4gie.load_transforms(encoder)
size = encoder.pretrained_cfg["input_size"][-1]
print(f"{args.backbone}: {encoder.num_features} features per image at {size} px")

# %% [markdown]
# ## Embed every image
# The dataset reads each image once into uint8 `[3, H, W]` (unreadable files are skipped and
# listed); `preprocess` then works on whole batches.

# %%
images = ImageFolderDataset(args.images, size=round(size / encoder.pretrained_cfg["crop_pct"]))
features = []
with torch.inference_mode():
    for start in range(0, len(images), args.batch_size):
        indices = range(start, min(start + args.batch_size, len(images)))
        batch = torch.stack([images[i]["image"] for i in indices])  # uint8 [B, 3, H, W]
        features.append(encoder(preprocess(batch)))
features = torch.cat(features)  # [N, D]
groups = [path.parent.name for path in images.images]
torch.save({"features": features, "paths": [str(p) for p in images.images]}, out / "features.pt")

# %% [markdown]
# ## Project to 2D and plot
# `torch.pca_lowrank` centres the features; the first two right singular vectors span the plane.

# %%
_, _, components = torch.pca_lowrank(features, q=2)
points = (features - features.mean(dim=0)) @ components  # [N, 2]
figure, axis = plt.subplots(figsize=(6, 5))
for group in sorted(set(groups)):
    chosen = torch.tensor([g == group for g in groups])
    axis.scatter(*points[chosen].T, s=12, label=group)
if len(set(groups)) <= 12:
    axis.legend(fontsize=7, markerscale=1.5)
axis.set(title=f"{args.backbone}: {len(images)} images", xlabel="PC 1", ylabel="PC 2")
figure.tight_layout()
figure.savefig(out / "embedding.png", dpi=120)
print(f"wrote {out / 'embedding.png'} and {out / 'features.pt'}")
