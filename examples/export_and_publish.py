r"""Export a pretrained encoder and publish it on the Hugging Face Hub.

Turns a pretraining checkpoint into a timm-format folder with a model card, checks that ssl4gie
and plain timm load it to the same features, and publishes it (`--dry-run`: list the files and
their hashes, contact nothing). The Python side of `ssl4gie zoo export` and `ssl4gie zoo
publish`.

    python examples/export_and_publish.py --checkpoint last.ckpt \
        --name resnet50-barlow-ours --repo-id our-lab/resnet50-barlow-ours --dry-run
    python examples/export_and_publish.py --smoke         # a tiny run, then a dry run

Publishing for real needs a token with write access (`hf auth login` or `HF_TOKEN`).
"""

# %%
import argparse
import shutil
from pathlib import Path

import lightning as L
import timm
import torch
from _smoke import keep_caches_under, smoke_requested, synthetic

import ssl4gie
from ssl4gie.zoo import publish

parser = argparse.ArgumentParser(description="Export a checkpoint and publish it on the Hub.")
parser.add_argument("--checkpoint", help="Lightning .ckpt of ssl4gie pretraining (or a release)")
parser.add_argument("--name", default="resnet50-barlow-ours", help="{arch}-{method}-{data}")
parser.add_argument("--repo-id", default="our-lab/resnet50-barlow-ours", help="org/name on the Hub")
parser.add_argument("--dry-run", action="store_true", help="list what would be sent; send nothing")
parser.add_argument("--out", default="runs/examples/export_and_publish", help="output folder")
parser.add_argument("--smoke", action="store_true", help="make a tiny checkpoint, dry run only")
args, _ = parser.parse_known_args()
out = Path(args.out)

# %% A smoke run makes its own checkpoint: one Barlow Twins step of a ResNet-18 on 16 frames.
if smoke_requested(args.smoke):
    from ssl4gie.data.datamodules import PretrainDataModule, Source
    from ssl4gie.methods import BarlowTwins
    from ssl4gie.transforms import TwoViews

    keep_caches_under(out)
    L.seed_everything(0, verbose=False)
    frames = synthetic("hyperkvasir-unlabeled", out / "data", n=16)
    method = BarlowTwins("resnet18", projector_dims=[64, 64], views=TwoViews.barlow_twins(size=32))
    data = PretrainDataModule(Source("folder", str(frames)), size=48, batch_size=8, num_workers=0)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, default_root_dir=out)
    trainer.fit(method, datamodule=data)
    args.checkpoint = out / "smoke.ckpt"
    trainer.save_checkpoint(args.checkpoint)
    args.name, args.repo_id, args.dry_run = "resnet18-barlow-smoke", "our-lab/smoke", True
if not args.checkpoint:
    parser.error("give --checkpoint (or --smoke)")

# %% [markdown]
# ## Export
# `export_backbone` keeps only the encoder (`backbone.*` weights; projector, momentum copies
# and optimiser state are left out), writes `model.safetensors` + `config.json` with timm's
# own `save_for_hf`, and a `README.md` model card from the zoo card of `--name` (a registered
# name keeps its card; a new one records method and data from the name and licence "unknown":
# pass `card=WeightsCard(...)` to record licence, paper and hardware).

# %%
folder = out / args.name
shutil.rmtree(folder, ignore_errors=True)
ssl4gie.export_backbone(args.checkpoint, folder, name=args.name)
for path in sorted(folder.iterdir()):
    print(f"{path.name:<20}{path.stat().st_size:>12} bytes")
card_body = (folder / "README.md").read_text().split("\n---\n", 1)[1]  # after the YAML header
print("\n".join(card_body.strip().splitlines()[:8]))

# %% [markdown]
# ## Check: ssl4gie and plain timm give the same features
# `ssl4gie.load_backbone` adds the card's preprocessing; timm alone reads the same folder.

# %%
ours = ssl4gie.load_backbone(folder)
plain = timm.create_model(f"local-dir:{folder}", pretrained=True, num_classes=0).eval()
images = torch.rand(2, 3, *ours.pretrained_cfg["input_size"][1:])
with torch.inference_mode():
    assert torch.allclose(ours(images), plain(images), atol=1e-5)
print(f"ssl4gie and timm agree: {ours.num_features} features per image")

# %% [markdown]
# ## Publish
# With `--dry-run`, `publish` returns the commit operations it would send (path, size, sha256)
# and contacts nothing; without it, it creates the repo if needed and uploads one commit. Pin
# the commit it prints as the `revision` of the entry in your zoo index.

# %%
result = publish(folder, args.repo_id, dry_run=args.dry_run)
if args.dry_run:
    print(f"would send {len(result)} files to {args.repo_id}:")
    for operation in result:
        info = operation.upload_info
        print(f"  {operation.path_in_repo:<20}{info.size:>12} bytes  sha256 {info.sha256.hex()}")
else:
    print(f"published: {result}; load with ssl4gie.load_backbone('hf-hub:{args.repo_id}')")
