"""SwAV [Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments", arXiv:2006.09882; facebookresearch/swav ``main_swav.py``, ``src/resnet50.py``,
``scripts/``]."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from ssl4gie.distributed import gather_no_grad, rank, world_size
from ssl4gie.errors import InputError
from ssl4gie.losses import swav_loss
from ssl4gie.methods.base import VIT_RECIPE, ArchitectureKind, Recipe, SSLMethod
from ssl4gie.methods.dino import check_patch_divisible, features_by_resolution
from ssl4gie.methods.heads import mlp
from ssl4gie.nn import fp32_linear, to_fp32
from ssl4gie.transforms.views import MultiCrop

__all__ = ["SwAV"]

NUM_ASSIGN = 2  # the official ``crops_for_assign`` [0, 1]: codes from the two global crops


class SwAV(SSLMethod):
    """SwAV: predict the optimal-transport cluster code of one crop from the other crops.

    "we compute a code from an augmented version of the image and predict this code from other
    augmented versions of the same image" [Caron et al. 2020, Sec. 3.1]. The backbone runs once
    per crop resolution (:func:`~ssl4gie.methods.dino.features_by_resolution`), the projector's
    l2-normalised output is scored against ``num_prototypes`` prototypes (l2-normalised before
    every step, as the official ``train``; the scores in float32, also under bf16 autocast),
    and :func:`~ssl4gie.losses.swav_loss` gets codes for the 2 global crops from Sinkhorn-Knopp
    over the global batch of all processes.

    Queue (for small batches): with ``queue_length > 0``, each process keeps the last
    ``queue_length / W`` (rounded down to whole global batches, as the official code) projections
    of each global crop, filled from epoch ``epoch_queue_starts`` on; once full, their scores
    against the current prototypes join the Sinkhorn batch. As the official per-rank tensor, the
    queue is a plain attribute, not a buffer: DDP (``broadcast_buffers=True``, Lightning's
    default) would overwrite every process's queue with rank 0's at each forward. Checkpoints
    hold every process's queue (``checkpoint["swav_queue"]``, ``[W, 2, queue_length / W, dim]``,
    the official ``queue{rank}.pth`` files); a resume on as many processes gives each its own.

    Official defaults (``main_swav.py`` arguments, ``scripts/swav_800ep_pretrain.sh``,
    ``scripts/swav_200ep_bs256_pretrain.sh``):

    - projector ``2048 -> 2048 -> 128`` (Linear, BN, ReLU, Linear), 3000 prototypes, temperature
      0.1, Sinkhorn epsilon 0.05 with 3 iterations; views :meth:`MultiCrop.swav` (2x224 + 6x96).
    - ResNet-50, batch 4096: LARS (trust 0.001), lr 4.8, i.e. 0.3 per 256 with linear scaling,
      final lr 0.0048 (``min_lr_ratio`` 0.001), weight decay 1e-6, 10 warm-up epochs; prototypes
      frozen for 313 iterations (one ImageNet epoch at 4096: ``freeze_prototypes_epochs`` 1).
      Deviation: the official warm-up starts at ``start_warmup`` (0 by default, 0.3 in the
      800-epoch script), here at 0.
    - batch 256: lr 0.6 (``base_lr=0.6``, twice the linear scaling), final 0.0006, no warm-up,
      ``queue_length`` 3840 from epoch 15, prototypes frozen 5005 iterations (1 epoch).
    - ViTs (no official recipe): :data:`~ssl4gie.methods.base.VIT_RECIPE`.

    Args:
        hidden_dim, dim: projector sizes (2048, 128).
        num_prototypes: 3000.
        temperature, epsilon, sinkhorn_iterations: 0.1, 0.05, 3.
        queue_length: total over processes (0: no queue, the official default).
        epoch_queue_starts: 15.
        freeze_prototypes_epochs: epochs during which the prototypes get no update (1).
        **kwargs: :class:`~ssl4gie.methods.base.SSLMethod` arguments.

    Examples:
        >>> crops = MultiCrop.swav(global_size=32, local_size=16, num_local=2)
        >>> method = SwAV("resnet18", hidden_dim=128, dim=32, num_prototypes=50, views=crops)
        >>> images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
        >>> loss, stats = method.ssl_loss(method.views(images))
        >>> loss.shape, stats["embedding"].shape
        (torch.Size([]), torch.Size([4, 32]))
    """

    RECIPES: ClassVar[dict[ArchitectureKind, Recipe]] = {
        "cnn": Recipe("lars", base_lr=0.3, weight_decay=1e-6, warmup_epochs=10, min_lr_ratio=1e-3),
        "vit": VIT_RECIPE,
    }

    def __init__(
        self,
        backbone: str = "resnet50",
        hidden_dim: int = 2048,
        dim: int = 128,
        num_prototypes: int = 3000,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        queue_length: int = 0,
        epoch_queue_starts: int = 15,
        freeze_prototypes_epochs: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        check_patch_divisible(self.backbone, [p.size for p, _ in self.views.groups], "SwAV")
        if queue_length < 0 or num_prototypes < 1 or freeze_prototypes_epochs < 0:
            raise InputError(
                "SwAV: need queue_length >= 0, num_prototypes >= 1, freeze_prototypes_epochs >= 0"
            )
        self.projector = mlp([self.backbone.num_features, hidden_dim, dim])
        self.prototypes = nn.Linear(dim, num_prototypes, bias=False)
        self.sinkhorn = {"temperature": temperature, "epsilon": epsilon}
        self.sinkhorn["iterations"] = sinkhorn_iterations
        self.queue_length, self.epoch_queue_starts = queue_length, epoch_queue_starts
        self.freeze_prototypes_epochs = freeze_prototypes_epochs
        self._freeze_prototypes_steps = 0
        self.queue = torch.zeros(NUM_ASSIGN, 0, dim)  # per process, sized on_train_start

    def default_views(self) -> nn.Module:
        return MultiCrop.swav()

    def ssl_loss(self, views: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """``[global1, global2, local1, ...]`` (``[N, 3, h, w]`` each) -> SwAV loss; updates the
        queue when it is in use."""
        if len(views) <= NUM_ASSIGN:
            raise InputError(f"SwAV needs more than {NUM_ASSIGN} crops, got {len(views)}")
        with torch.no_grad():
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        features = torch.cat(features_by_resolution(self.backbone, views))  # [V*N, D]
        embeddings = F.normalize(to_fp32(self.projector(features)), dim=1)  # [V*N, dim]
        scores = fp32_linear(embeddings, self.prototypes.weight).chunk(len(views))  # V x [N, K]
        loss = swav_loss(scores, self._queue_scores(), num_assign=NUM_ASSIGN, **self.sinkhorn)
        batch = views[0].shape[0]
        self._enqueue(embeddings[: NUM_ASSIGN * batch].detach().view(NUM_ASSIGN, batch, -1))
        return loss, {"embedding": embeddings[:batch]}

    def _queue_scores(self) -> list[Tensor] | None:
        """The full queue's scores against the prototypes, ``[Q, K]`` per global crop, or None
        while the queue is off or not yet full (its oldest row still zero)."""
        if self.queue.shape[1] == 0 or not self.queue[:, -1].any():
            return None
        with torch.no_grad():
            return list(fp32_linear(self.queue, self.prototypes.weight))

    @torch.no_grad()
    def _enqueue(self, embeddings: Tensor) -> None:
        """Push ``[2, N, dim]`` in front of the queue (from ``epoch_queue_starts`` on)."""
        if self.queue.shape[1] == 0 or self.current_epoch < self.epoch_queue_starts:
            return
        batch = embeddings.shape[1]
        self.queue = torch.cat([embeddings.to(self.queue), self.queue[:, :-batch]], dim=1)

    def on_train_start(self) -> None:
        """Size the queue per process (unless a checkpoint restored it) and the freeze length."""
        super().on_train_start()
        steps_per_epoch, _ = self._steps_per_epoch_and_total()
        self._freeze_prototypes_steps = math.ceil(self.freeze_prototypes_epochs * steps_per_epoch)
        global_batch = self._per_process_batch_size() * self.trainer.world_size
        per_process = (
            self.queue_length - self.queue_length % global_batch
        ) // self.trainer.world_size
        if self.queue.shape[1] == 0 and per_process > 0:
            shape = (NUM_ASSIGN, per_process, self.queue.shape[-1])
            self.queue = torch.zeros(shape, device=self.device, dtype=self.prototypes.weight.dtype)
        self.queue = self.queue.to(self.device)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Drop the prototypes' gradient while they are frozen (official
        ``freeze_prototypes_niters``): the optimiser then skips them."""
        if self.trainer.global_step < self._freeze_prototypes_steps:
            self.prototypes.weight.grad = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add every process's queue, ``[W, 2, L, dim]`` (a collective: Lightning calls this hook
        on every process)."""
        super().on_save_checkpoint(checkpoint)
        if self.queue.numel():
            checkpoint["swav_queue"] = gather_no_grad(self.queue[None]).cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Take this process's queue from the checkpoint; a checkpoint of another number of
        processes restarts the queue empty (with a warning)."""
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get("swav_queue")
        if saved is None:
            return
        if saved.shape[0] != world_size():
            rank_zero_warn(
                f"SwAV: the checkpoint holds the queues of {saved.shape[0]} processes, this run "
                f"has {world_size()}; the queue restarts empty and fills again"
            )
            return
        self.queue = saved[rank()].clone()
