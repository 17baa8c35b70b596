"""The references the benchmarks compare ssl4gie against, in the same run.

- The plain-PyTorch way (how the seed studies' code runs): a Dataset that decodes with PIL and
  applies torchvision's two-view CPU transforms in the DataLoader workers, and the model, loss
  and optimiser in a plain loop (:class:`PILViews`, :func:`torchvision_two_views`,
  :func:`plain_optimizer`, :func:`loop_images_per_second`).
- lightly (the ``bench`` extra; imported only here, never by ssl4gie): its Barlow Twins, SimCLR
  and BYOL written as lightly's examples write them, with lightly's heads, losses, LARS,
  momentum update and transforms (:class:`LightlyModel`, :func:`lightly_transform`). Without
  lightly installed, :data:`LIGHTLY_METHODS` is empty and the lightly columns stay empty.
"""

from __future__ import annotations

import copy
import importlib.util
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from _common import sync
from timm.optim import create_optimizer_v2
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ssl4gie.methods import SSLMethod
from ssl4gie.methods.momentum import MomentumEncoder

HAVE_LIGHTLY = importlib.util.find_spec("lightly") is not None
LIGHTLY_METHODS = ("barlow_twins", "simclr", "byol") if HAVE_LIGHTLY else ()
LIGHTLY_MISSING = "lightly is not installed (pip install ssl4gie[bench]): no lightly figures"
TIMM_NAMES = {"lars": "lars", "adamw": "adamw", "sgd": "momentum"}


class PILViews(Dataset):
    """JPEG files decoded with PIL, each passed through ``transform`` (PIL -> list of views)."""

    def __init__(self, paths: Sequence[Path], transform: Callable[[Any], list[Tensor]]) -> None:
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> list[Tensor]:
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def torchvision_two_views(size: int) -> Callable[[Any], list[Tensor]]:
    """torchvision's BYOL/Barlow Twins two-view CPU transforms (BYOL Table 6: blur 1.0/0.1,
    solarise 0/0.2), as the usual training scripts write them."""
    from torchvision import transforms as T

    def view(blur_p: float, solarize_p: float) -> T.Compose:
        return T.Compose([
            T.RandomResizedCrop(size, interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(23, (0.1, 2.0))], p=blur_p),
            T.RandomSolarize(128, p=solarize_p),
            T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ])  # fmt: skip

    first, second = view(1.0, 0.0), view(0.1, 0.2)
    return lambda image: [first(image), second(image)]


def view_loader(dataset: Dataset, batch: int, workers: int, device: torch.device) -> DataLoader:
    """The usual training loader: shuffled, whole batches, pinned memory on CUDA."""
    return DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )


def plain_optimizer(method: SSLMethod) -> torch.optim.Optimizer:
    """The method's optimiser kind (LARS for CNNs, AdamW for ViTs) from timm, with timm's own
    weight-decay groups, as a plain script would build it."""
    recipe = method.recipe
    opt = TIMM_NAMES[recipe.optimizer]
    return create_optimizer_v2(method, opt=opt, lr=0.1, weight_decay=recipe.weight_decay)


def plain_step(
    method: SSLMethod, optimizer: torch.optim.Optimizer, autocast: torch.autocast
) -> Callable[[list[Tensor]], None]:
    """One plain training step of ``method`` on ready views: loss, backward, optimiser step and
    momentum-encoder update (momentum 0.99), no Lightning."""
    encoders = [m for m in method.modules() if isinstance(m, MomentumEncoder)]

    def step(views: list[Tensor]) -> None:
        with autocast:
            loss, _ = method.ssl_loss(views)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for encoder in encoders:
            encoder.update(0.99)

    return step


def loop_images_per_second(
    loader: DataLoader,
    step: Callable[[list[Tensor]], None],
    warmup: int,
    steps: int,
    device: torch.device,
) -> float:
    """Images/s of a plain loop over ``loader`` (views moved with ``non_blocking``), over the
    ``steps`` batches after ``warmup`` (the loader restarts when it runs out)."""
    batches, seconds, count = iter(loader), 0.0, 0
    sync(device)
    start = time.perf_counter()
    for index in range(warmup + steps):
        try:
            views = next(batches)
        except StopIteration:
            batches = iter(loader)
            views = next(batches)
        step([view.to(device, non_blocking=True) for view in views])
        sync(device)
        now = time.perf_counter()
        if index >= warmup:
            seconds, count = seconds + now - start, count + len(views[0])
        start = now
    return count / seconds


def _linear_widths(head: nn.Module) -> tuple[int, int]:
    """(first hidden width, output width) of an MLP head."""
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    return linears[0].out_features, linears[-1].out_features


class LightlyModel(nn.Module):
    """lightly's version of a two-view method on a copy of ``method``'s backbone, with heads of
    the same widths: ``loss([x1, x2])`` and ``after_step()`` (momentum update)."""

    def __init__(self, name: str, method: SSLMethod) -> None:
        from lightly import loss as ll
        from lightly.models.modules import heads as lh

        super().__init__()
        if name not in LIGHTLY_METHODS:
            raise ValueError(f"no lightly baseline for {name}; lightly ones: {LIGHTLY_METHODS}")
        self.name = name
        self.backbone = copy.deepcopy(method.backbone)
        features = self.backbone.num_features
        hidden, out = _linear_widths(method.projector)
        if name == "barlow_twins":
            self.projection_head = lh.BarlowTwinsProjectionHead(features, hidden, out)
            self.criterion = ll.BarlowTwinsLoss(lambda_param=method.lambd)
        elif name == "simclr":
            self.projection_head = lh.SimCLRProjectionHead(features, hidden, out)
            self.criterion = ll.NTXentLoss(temperature=method.temperature)
        else:
            self.projection_head = lh.BYOLProjectionHead(features, hidden, out)
            self.prediction_head = lh.BYOLPredictionHead(out, hidden, out)
            self.criterion = ll.NegativeCosineSimilarity()
            self.backbone_momentum = copy.deepcopy(self.backbone).requires_grad_(False)
            self.projection_head_momentum = copy.deepcopy(self.projection_head)
            self.projection_head_momentum.requires_grad_(False)

    def loss(self, views: list[Tensor]) -> Tensor:
        """lightly's examples: one forward per view; BYOL symmetrised with the momentum copy."""
        x0, x1 = views
        z0 = self.projection_head(self.backbone(x0))
        z1 = self.projection_head(self.backbone(x1))
        if self.name != "byol":
            return self.criterion(z0, z1)
        p0, p1 = self.prediction_head(z0), self.prediction_head(z1)
        with torch.no_grad():
            t0 = self.projection_head_momentum(self.backbone_momentum(x0))
            t1 = self.projection_head_momentum(self.backbone_momentum(x1))
        return 0.5 * (self.criterion(p0, t1) + self.criterion(p1, t0))

    def after_step(self) -> None:
        """BYOL: lightly's ``update_momentum`` of the copies (momentum 0.99)."""
        if self.name == "byol":
            from lightly.models.utils import update_momentum

            update_momentum(self.backbone, self.backbone_momentum, m=0.99)
            update_momentum(self.projection_head, self.projection_head_momentum, m=0.99)


def lightly_step(
    model: LightlyModel, kind: str, autocast: torch.autocast
) -> Callable[[list[Tensor]], None]:
    """One step of lightly's model: lightly's LARS for CNNs (``kind`` ``"cnn"``), torch's
    AdamW for ViTs, as lightly's benchmarks use them."""
    from lightly.utils.lars import LARS

    params = [p for p in model.parameters() if p.requires_grad]
    if kind == "cnn":
        optimizer: torch.optim.Optimizer = LARS(params, lr=0.1, momentum=0.9, weight_decay=1e-6)
    else:
        optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1)

    def step(views: list[Tensor]) -> None:
        with autocast:
            loss = model.loss(views)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.after_step()

    return step


def lightly_transform(name: str, size: int) -> Callable[[Any], list[Tensor]]:
    """lightly's CPU transform for the method (its Barlow Twins examples use BYOL's)."""
    from lightly.transforms import (
        BYOLTransform,
        BYOLView1Transform,
        BYOLView2Transform,
        SimCLRTransform,
    )

    if name == "simclr":
        return SimCLRTransform(input_size=size)
    views = BYOLView1Transform(input_size=size), BYOLView2Transform(input_size=size)
    return BYOLTransform(view_1_transform=views[0], view_2_transform=views[1])
