"""What the examples share for ``--smoke`` runs: synthetic data and a tiny local zoo entry.

A smoke run (``--smoke`` or ``SSL4GIE_SMOKE=1``) replaces real datasets by synthetic ones in
the same on-disk layouts and real backbones by a randomly initialised ResNet-18 registered in
the zoo, so every example runs top to bottom on a CPU in seconds, without network. Everything a
smoke run writes, caches included, stays under its ``--out`` folder.
"""

from __future__ import annotations

import os
from pathlib import Path

SMOKE_NAME = "resnet18-random-smoke"


def smoke_requested(flag: bool) -> bool:
    """True for ``--smoke`` or ``SSL4GIE_SMOKE=1``."""
    return flag or os.environ.get("SSL4GIE_SMOKE", "") not in ("", "0")


def keep_caches_under(out: Path) -> None:
    """Point the dataset-index and zoo caches (``$XDG_CACHE_HOME``) into ``out/cache``."""
    os.environ["XDG_CACHE_HOME"] = str(Path(out).resolve() / "cache")


def synthetic(layout: str, root: Path, n: int, size: int = 64) -> Path:
    """A synthetic dataset in ``layout``'s real on-disk form at ``root`` (reused if there)."""
    from ssl4gie.data.synthetic import synthesize

    root = Path(root)
    if not root.exists():
        synthesize(layout, root, n=n, size=size, seed=0, progress=False)
    return root


def tiny_zoo_entry(size: int = 32) -> str:
    """Register a randomly initialised ResNet-18 as zoo name ``resnet18-random-smoke``.

    A stand-in for a downloaded backbone: its weights are exported into the zoo cache (where
    ``ssl4gie zoo convert`` puts manual downloads) and load by name with ``load_backbone``.
    """
    import ssl4gie
    from ssl4gie.backbones import create_backbone
    from ssl4gie.zoo.cards import WeightsCard
    from ssl4gie.zoo.convert import Converted
    from ssl4gie.zoo.hub import ssl4gie_cache_dir
    from ssl4gie.zoo.load import converted_folder

    card = WeightsCard(
        name=SMOKE_NAME,
        architecture="resnet18",
        method="random",
        data="none: random weights for smoke runs",
        input_size=(3, size, size),
        license="apache-2.0",
        available=True,
        origin_url=(ssl4gie_cache_dir() / SMOKE_NAME).as_uri(),
    )
    ssl4gie.register_backbone(card, overwrite=True)
    folder = converted_folder(card)
    if not (folder / "model.safetensors").is_file():
        weights = create_backbone("resnet18").state_dict()
        ssl4gie.export_backbone(Converted(weights, "resnet18"), folder, card=card)
    return SMOKE_NAME
