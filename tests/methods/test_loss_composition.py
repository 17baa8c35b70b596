"""Each method's ``ssl_loss`` equals its loss functions composed by hand on fixed views, with the
papers' compositions written out here: which network sees which view, in which batch (batch
norm statistics), and which pairs are scored. The momentum copies are moved away from the online
networks first, so that mixing up online and momentum outputs changes the value."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssl4gie.losses import (
    barlow_twins_loss,
    byol_loss,
    dino_loss,
    info_nce_loss,
    nt_xent_loss,
    swav_loss,
)
from ssl4gie.methods import BYOL, DINO, BarlowTwins, MoCoV3, SimCLR, SwAV
from ssl4gie.transforms.views import MultiCrop, TwoViews

B = 4


pytestmark = pytest.mark.usefixtures("one_thread")  # seeded by conftest._seed


def _two_views() -> list[torch.Tensor]:
    return [torch.randn(B, 3, 32, 32), torch.randn(B, 3, 32, 32)]


def _multi_crops(locals_: int = 2) -> list[torch.Tensor]:
    return [torch.randn(B, 3, 32, 32) for _ in range(2)] + [
        torch.randn(B, 3, 16, 16) for _ in range(locals_)
    ]


def _perturb_online(method) -> None:
    """Move every online parameter so the momentum copy (made at construction) differs."""
    with torch.no_grad():
        for name, param in method.named_parameters():
            if not name.startswith("momentum_encoder") and param.requires_grad:
                param.add_(0.05 * torch.randn_like(param))


def _close(got: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_mocov3_is_symmetric_q1_k2_plus_q2_k1():
    method = MoCoV3("resnet18", mlp_dim=64, dim=32, views=TwoViews.mocov3(size=32))
    _perturb_online(method)
    x1, x2 = _two_views()
    loss, stats = method.ssl_loss([x1, x2])
    online = lambda x: method.predictor(method.projector(method.backbone(x)))  # noqa: E731
    key = method.momentum_encoder.encoder  # momentum backbone + projector
    # moco-v3 builder.py: contrastive_loss(q1, k2) + contrastive_loss(q2, k1); T = 1.0 (ResNet)
    expected = info_nce_loss(online(x1), key(x2), 1.0) + info_nce_loss(online(x2), key(x1), 1.0)
    _close(loss, expected)
    _close(stats["embedding"], method.projector(method.backbone(x1)))


def test_mocov3_vit_uses_temperature_0_2():
    method = MoCoV3(
        "vit_tiny_patch16_224", mlp_dim=32, dim=16, views=TwoViews.mocov3(size=32),
        backbone_kwargs={"img_size": 32, "patch_size": 8},
    )  # fmt: skip
    x1, x2 = _two_views()
    online = lambda x: method.predictor(method.projector(method.backbone(x)))  # noqa: E731
    key = method.momentum_encoder.encoder
    expected = info_nce_loss(online(x1), key(x2), 0.2) + info_nce_loss(online(x2), key(x1), 0.2)
    _close(method.ssl_loss([x1, x2])[0], expected)


def test_byol_is_symmetric_p1_t2_plus_p2_t1():
    method = BYOL("resnet18", mlp_dim=64, dim=32, views=TwoViews.byol(size=32))
    _perturb_online(method)
    x1, x2 = _two_views()
    loss, stats = method.ssl_loss([x1, x2])
    online = lambda x: method.predictor(method.projector(method.backbone(x)))  # noqa: E731
    target = method.momentum_encoder.encoder
    # BYOL Sec. 3.1: L + L~, the prediction of each view against the target of the other
    _close(loss, byol_loss(online(x1), target(x2)) + byol_loss(online(x2), target(x1)))
    _close(stats["embedding"], method.projector(method.backbone(x1)))


def test_simclr_runs_both_views_in_one_batch():
    method = SimCLR("resnet18", mlp_dim=64, dim=32, views=TwoViews.simclr(size=32))
    x1, x2 = _two_views()
    loss, stats = method.ssl_loss([x1, x2])
    z = method.projector(method.backbone(torch.cat([x1, x2])))  # batch norm over the 2N views
    _close(loss, nt_xent_loss(z[:B], z[B:], 0.5))
    _close(stats["embedding"], z[:B])
    separate = nt_xent_loss(
        method.projector(method.backbone(x1)), method.projector(method.backbone(x2)), 0.5
    )
    assert not torch.allclose(loss, separate)  # the batch-norm composition matters


def test_barlow_twins_views_are_separate_batches():
    method = BarlowTwins("resnet18", projector_dims=[64, 64], views=TwoViews.barlow_twins(size=32))
    x1, x2 = _two_views()
    loss, stats = method.ssl_loss([x1, x2])
    z1, z2 = (method.projector(method.backbone(x)) for x in (x1, x2))
    _close(loss, barlow_twins_loss(z1, z2, 0.0051))
    _close(stats["embedding"], z1)
    assert not torch.allclose(loss, barlow_twins_loss(z1, z2, 0.01))


def test_dino_student_sees_every_crop_teacher_the_globals():
    crops = MultiCrop.dino(global_size=32, local_size=16, num_local=2)
    method = DINO("resnet18", out_dim=64, hidden_dim=32, bottleneck_dim=16, views=crops)
    _perturb_online(method)
    with torch.no_grad():
        method.center.copy_(0.1 * torch.randn_like(method.center))
    center = method.center.clone()
    views = _multi_crops()
    loss, stats = method.ssl_loss(views)
    # official MultiCropWrapper: one backbone pass per run of equal resolutions
    features = torch.cat(
        [method.backbone(torch.cat(views[:2])), method.backbone(torch.cat(views[2:]))]
    )
    student = method.head(features).chunk(4)
    teacher = method.momentum_encoder.encoder(torch.cat(views[:2])).chunk(2)
    _close(loss, dino_loss(student, teacher, center, 0.1, 0.04))
    # update_center: c <- 0.9 c + 0.1 * mean of the teacher's global-crop outputs
    _close(method.center, 0.9 * center + 0.1 * torch.cat(teacher).mean(dim=0, keepdim=True))
    _close(stats["embedding"], F.normalize(method.head.mlp(features[:B]), dim=-1))


def test_dino_teacher_temperature_follows_the_epoch(monkeypatch):
    crops = MultiCrop.dino(global_size=32, local_size=16, num_local=1)
    method = DINO(
        "resnet18", out_dim=32, hidden_dim=16, bottleneck_dim=8, views=crops,
        warmup_teacher_temp=0.02, teacher_temp=0.06, warmup_teacher_temp_epochs=3,
    )  # fmt: skip
    monkeypatch.setattr(type(method), "current_epoch", property(lambda self: 1))
    _, stats = method.ssl_loss(_multi_crops(1))
    assert float(stats["teacher_temperature"]) == pytest.approx(0.04)  # linspace(.02, .06, 3)[1]


def test_swav_scores_every_crop_against_normalised_prototypes():
    crops = MultiCrop.swav(global_size=32, local_size=16, num_local=2)
    method = SwAV("resnet18", hidden_dim=32, dim=16, num_prototypes=10, views=crops)
    with torch.no_grad():
        method.prototypes.weight.mul_(3.0)  # not unit rows: ssl_loss must normalise them
    prototypes = F.normalize(method.prototypes.weight.detach().clone(), dim=1)
    views = _multi_crops()
    loss, stats = method.ssl_loss(views)
    features = torch.cat(
        [method.backbone(torch.cat(views[:2])), method.backbone(torch.cat(views[2:]))]
    )
    embeddings = F.normalize(method.projector(features), dim=1)
    _close(stats["embedding"], embeddings[:B])
    scores = (embeddings @ prototypes.T).chunk(4)
    expected = swav_loss(scores, None, temperature=0.1, epsilon=0.05, iterations=3, num_assign=2)
    _close(loss, expected)
    _close(method.prototypes.weight, prototypes)


def test_multi_crop_methods_refuse_two_crops():
    from ssl4gie.errors import InputError

    two = _two_views()
    crops = {"global_size": 32, "local_size": 16, "num_local": 1}
    swav = SwAV("resnet18", hidden_dim=16, dim=8, num_prototypes=4, views=MultiCrop.swav(**crops))
    with pytest.raises(InputError, match=r"^SwAV needs more than 2 crops, got 2$"):
        swav.ssl_loss(two)
    heads = {"out_dim": 8, "hidden_dim": 8, "bottleneck_dim": 4}
    dino = DINO("resnet18", **heads, views=MultiCrop.dino(**crops))
    with pytest.raises(InputError, match=r"^DINO needs 2 global crops and >= 1 local crop, got 2$"):
        dino.ssl_loss(two)
