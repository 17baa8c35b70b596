"""``load_backbone`` from a warm cache: an export folder and a Hugging Face Hub cache.

    python benchmarks/load_backbone.py [--gpu] [--backbones ...] [--json out]

For each backbone: an export folder written by ``export_backbone`` (random weights), then
``load_backbone(folder)`` and ``load_backbone("hf-hub:bench/<name>")`` from a Hub cache holding
the same files in huggingface_hub's layout (found there first: nothing is downloaded).
The baseline is ``timm.create_model`` of the architecture with random weights, what any load
costs at least. Median seconds after one warm-up load (files in the page cache).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import _common
import timm
import torch

from ssl4gie.backbones import create_backbone
from ssl4gie.zoo.convert import Converted
from ssl4gie.zoo.export import export_backbone
from ssl4gie.zoo.load import load_backbone

COLUMNS: list[_common.Column] = [
    ("backbone", "backbone", "{}"),
    ("megabytes", "MB", "{:.0f}"),
    ("create_s", "timm.create_model s", "{:.3f}"),
    ("folder_s", "folder s", "{:.3f}"),
    ("hub_cache_s", "hub cache s", "{:.3f}"),
    ("folder_overhead", "folder/create", "{:.2f}"),
]
REVISION = "0" * 40  # the commit hash the fake cache is filed under


def hub_cache(folder: Path, cache: Path, repo_id: str) -> None:
    """File ``folder``'s files as ``repo_id`` at :data:`REVISION` in a Hub cache (the layout
    huggingface_hub reads: ``models--org--name/{refs/main, snapshots/<revision>/}``)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    shutil.copytree(folder, repo / "snapshots" / REVISION)


def measure(backbone: str, scale: _common.Scale, tmp: Path) -> dict:
    """One row: the load times of ``backbone``."""
    model = create_backbone(backbone)
    folder = tmp / backbone
    export_backbone(Converted(model.state_dict(), backbone), folder)
    hub_cache(folder, tmp / "hub", f"bench/{backbone}")
    seconds = _common.interleaved_seconds(
        {
            "create": lambda: timm.create_model(backbone, num_classes=0),
            "folder": lambda: load_backbone(folder),
            "hub_cache": lambda: load_backbone(f"hf-hub:bench/{backbone}", cache_dir=tmp / "hub"),
        },
        scale,
        torch.device("cpu"),
    )
    size = (folder / "model.safetensors").stat().st_size / 1e6
    row = {"backbone": backbone, "megabytes": size}
    row |= {f"{key}_s": value for key, value in seconds.items()}
    return row | {"folder_overhead": seconds["folder"] / seconds["create"]}


def main() -> None:
    args = _common.parser(__doc__.splitlines()[0]).parse_args()
    scale, device = _common.setup(args)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(backbone, scale, Path(tmp)) for backbone in scale.backbones]
    notes = ["loads run on CPU (a load builds the model on CPU; moving it is the caller's)"]
    title = "load_backbone from a warm cache"
    _common.finish("load_backbone", title, args, scale, device, rows, COLUMNS, notes, doc=__doc__)


if __name__ == "__main__":
    main()
