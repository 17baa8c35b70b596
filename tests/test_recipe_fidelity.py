"""Every shipped pretraining config is the run it cites (issue 17): a table of official values.

One row per (config, key, official value, public source). Each config is resolved once per
session as ``ssl4gie pretrain fit --config <name> --print_config`` resolves it (LightningCLI in
process: nothing is built or trained). Values a YAML leaves to the method (its recipe's
``min_lr_ratio``, its default views, timm's drop path) are read from the method built from that
resolved config on the meta device (no memory, no init cost). ``DIFFERENT`` pins the values a
config deliberately keeps different from the official run, each with its one-line reason.

Keys: ``trainer.*`` and ``model.*`` (the model's ``init_args``) of the resolved config;
``global_batch`` (``trainer.devices * data.batch_size``); ``recipe.*`` (the optimisation the
method runs), ``attr.*`` (a method attribute), ``views.*`` (global/first view, local view) and
``drop_path.student`` / ``drop_path.teacher`` (largest timm ``DropPath`` probability) of the
built method.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from timm.layers import DropPath

import ssl4gie
from ssl4gie.cli.lightning import run

CONFIGS = sorted(
    path.stem for path in (Path(ssl4gie.__file__).parent / "configs/pretrain").glob("*.yaml")
)

# Public sources, cited by every row.
BT = "facebookresearch/barlowtwins main.py"
BT_PAPER = "Zbontar et al. 2021 (arXiv:2103.03230), Implementation Details"
BYOL300 = "google-deepmind/deepmind-research byol/configs/byol.py, presets[300]"
BYOL_PAPER = "Grill et al. 2020 (arXiv:2006.07733), Sec. 3.3, App. C and Table 6"
DINO_B16 = "facebookresearch/dino README, ViT-B/16 args (released run)"
DINO_MAIN = "facebookresearch/dino main_dino.py defaults"
DINO_R50 = "facebookresearch/dino README, ResNet-50 command"
MAE = "facebookresearch/mae PRETRAIN.md and main_pretrain.py"
MAE_RELEASE = "He et al. 2022 (arXiv:2111.06377) Table 3; mae README released checkpoints"
MOCO_R50 = "facebookresearch/moco-v3 CONFIG.md ResNet-50 100-ep; main_moco.py defaults"
MOCO_VIT = "facebookresearch/moco-v3 CONFIG.md ViT-Base 300-ep; main_moco.py defaults"
SIMCLR = "google-research/simclr README ImageNet command; run.py defaults"
SIMCLR_PAPER = "Chen et al. 2020 (arXiv:2002.05709), App. A"
SIMMIM = "microsoft/SimMIM configs/swin_base__100ep/simmim_pretrain__swin_base__img192_window6"
SIMMIM_CODE = "microsoft/SimMIM config.py / data/data_simmim.py / README command"
SWAV = "facebookresearch/swav scripts/swav_400ep_pretrain.sh"


def _rows(configs: tuple[str, ...], rows: list[tuple[str, Any, str]]) -> list[tuple]:
    return [(config, key, value, source) for config in configs for key, value, source in rows]


BARLOW = ("barlow_twins_resnet50_hk", "barlow_twins_resnet50_in1k")
MOCO_R = ("mocov3_resnet50_hk", "mocov3_resnet50_in1k", "mocov3_resnet50_in1k-s3")
MOCO_V = ("mocov3_vitb16_hk", "mocov3_vitb16_in1k")
MAES = ("mae_vitb16_hk", "mae_vitb16_in1k")

# fmt: off
SAME: list[tuple[str, str, Any, str]] = [
    # Barlow Twins
    *_rows(BARLOW, [
        ("trainer.max_epochs", 1000, BT + " --epochs"),
        ("recipe.optimizer", "lars", BT + " LARS"),
        ("recipe.base_lr", 0.2, BT + " --learning-rate-weights"),
        ("recipe.bias_lr_ratio", 0.0048 / 0.2, BT + " --learning-rate-biases 0.0048"),
        ("recipe.weight_decay", 1.5e-6, BT_PAPER + " (main.py default: 1e-6)"),
        ("recipe.warmup_epochs", 10, BT + " adjust_learning_rate warmup_steps"),
        ("recipe.min_lr_ratio", 0.001, BT + " end_lr = base_lr * 0.001"),
        ("model.lambd", 0.0051, BT + " --lambd"),
        ("model.projector_dims", [8192, 8192, 8192], BT + " --projector"),
        ("views.crop_scale", (0.08, 1.0), BT + " Transform RandomResizedCrop"),
        ("views.interpolation", "bicubic", BT + " Transform"),
        ("views.blur_p", (1.0, 0.1), BT + " Transform GaussianBlur"),
        ("views.solarize_p", (0.0, 0.2), BT + " Transform Solarization"),
    ]),
    # BYOL, 300 epochs
    *_rows(("byol_resnet50_hk",), [
        ("trainer.max_epochs", 300, BYOL300),
        ("recipe.optimizer", "lars", BYOL_PAPER),
        ("recipe.base_lr", 0.3, BYOL300 + " _LR_PRESETS"),
        ("recipe.weight_decay", 1e-6, BYOL300 + " _WD_PRESETS"),
        ("model.base_momentum", 0.99, BYOL300 + " _EMA_PRESETS"),
        ("recipe.warmup_epochs", 10, BYOL_PAPER),
        ("recipe.min_lr_ratio", 0.0, BYOL_PAPER + " (cosine to 0)"),
        ("model.mlp_dim", 4096, BYOL_PAPER),
        ("model.dim", 256, BYOL_PAPER),
        ("views.crop_scale", (0.08, 1.0), BYOL_PAPER),
        ("views.blur_p", (1.0, 0.1), BYOL_PAPER),
        ("views.solarize_p", (0.0, 0.2), BYOL_PAPER),
        ("views.interpolation", "bicubic", BYOL_PAPER),
    ]),
    # DINO ViT-B/16: the released run
    *_rows(("dino_vitb16_hk",), [
        ("trainer.max_epochs", 400, DINO_B16),
        ("trainer.precision", "32-true", DINO_B16 + " use_fp16 false"),
        ("recipe.optimizer", "adamw", DINO_B16),
        ("recipe.base_lr", 7.5e-4, DINO_B16 + " lr"),
        ("model.min_lr", 2e-6, DINO_B16 + " min_lr (absolute)"),
        ("recipe.weight_decay", 0.04, DINO_B16),
        ("model.weight_decay_end", 0.4, DINO_B16),
        ("recipe.warmup_epochs", 10, DINO_B16),
        ("model.out_dim", 65536, DINO_B16),
        ("model.norm_last_layer", True, DINO_B16 + "; main_dino.py help: True with vit_base"),
        ("model.freeze_last_layer", 3, DINO_B16),
        ("model.clip_grad", 0.3, DINO_B16),
        ("model.teacher_temp", 0.07, DINO_B16),
        ("model.warmup_teacher_temp", 0.04, DINO_B16),
        ("model.warmup_teacher_temp_epochs", 50, DINO_B16),
        ("model.base_momentum", 0.996, DINO_B16 + " momentum_teacher"),
        ("model.student_temp", 0.1, DINO_MAIN + " DINOLoss"),
        ("model.center_momentum", 0.9, DINO_MAIN + " DINOLoss"),
        ("model.hidden_dim", 2048, DINO_MAIN + " DINOHead"),
        ("model.bottleneck_dim", 256, DINO_MAIN + " DINOHead"),
        ("drop_path.student", 0.1, DINO_B16 + " drop_path_rate"),
        ("drop_path.teacher", 0.0, DINO_MAIN + " teacher built without drop_path_rate"),
        ("views.global_scale", (0.25, 1.0), DINO_B16 + " global_crops_scale"),
        ("views.local_scale", (0.05, 0.25), DINO_B16 + " local_crops_scale"),
        ("views.num_local", 10, DINO_B16 + " local_crops_number"),
        ("views.global_size", 224, DINO_MAIN + " DataAugmentationDINO"),
        ("views.local_size", 96, DINO_MAIN + " DataAugmentationDINO"),
    ]),
    # DINO ResNet-50: the README command
    *_rows(("dino_resnet50_hk",), [
        ("trainer.max_epochs", 100, DINO_MAIN + " --epochs"),
        ("recipe.optimizer", "sgd", DINO_R50 + " --optimizer sgd"),
        ("recipe.base_lr", 0.03, DINO_R50 + " --lr 0.03"),
        ("recipe.weight_decay", 1e-4, DINO_R50 + " --weight_decay 1e-4"),
        ("attr.weight_decay_end", 1e-4, DINO_R50 + " --weight_decay_end 1e-4"),
        ("model.min_lr", 1e-6, DINO_MAIN + " --min_lr"),
        ("recipe.warmup_epochs", 10, DINO_MAIN + " --warmup_epochs"),
        ("model.out_dim", 65536, DINO_MAIN + " --out_dim"),
        ("model.norm_last_layer", True, DINO_MAIN + " --norm_last_layer"),
        ("model.freeze_last_layer", 1, DINO_MAIN + " --freeze_last_layer"),
        ("model.clip_grad", 3.0, DINO_MAIN + " --clip_grad"),
        ("model.teacher_temp", 0.04, DINO_MAIN + " --teacher_temp"),
        ("model.warmup_teacher_temp_epochs", 0, DINO_MAIN + " --warmup_teacher_temp_epochs"),
        ("model.base_momentum", 0.996, DINO_MAIN + " --momentum_teacher"),
        ("views.global_scale", (0.14, 1.0), DINO_R50 + " --global_crops_scale 0.14 1"),
        ("views.local_scale", (0.05, 0.14), DINO_R50 + " --local_crops_scale 0.05 0.14"),
        ("views.num_local", 8, DINO_MAIN + " --local_crops_number"),
    ]),
    # MAE ViT-B/16
    *_rows(MAES, [
        ("recipe.optimizer", "adamw", MAE),
        ("attr.betas", (0.9, 0.95), MAE + " AdamW betas"),
        ("recipe.base_lr", 1.5e-4, MAE + " --blr"),
        ("recipe.weight_decay", 0.05, MAE + " --weight_decay"),
        ("recipe.warmup_epochs", 40, MAE + " --warmup_epochs"),
        ("recipe.min_lr_ratio", 0.0, MAE + " --min_lr 0"),
        ("model.mask_ratio", 0.75, MAE + " --mask_ratio"),
        ("model.norm_pix_loss", True, MAE + " --norm_pix_loss"),
        ("model.decoder_width", 512, MAE + " mae_vit_base_patch16_dec512d8b"),
        ("model.decoder_depth", 8, MAE + " mae_vit_base_patch16_dec512d8b"),
        ("views.crop_scale", (0.2, 1.0), MAE + " RandomResizedCrop"),
        ("views.interpolation", "bicubic", MAE + " RandomResizedCrop interpolation=3"),
    ]),
    ("mae_vitb16_hk", "trainer.max_epochs", 800, MAE + " --epochs"),
    ("mae_vitb16_in1k", "trainer.max_epochs", 1600, MAE_RELEASE),
    # MoCo v3 ResNet-50, 100 epochs
    *_rows(MOCO_R, [
        ("trainer.max_epochs", 100, MOCO_R50),
        ("recipe.optimizer", "lars", MOCO_R50),
        ("recipe.base_lr", 0.6, MOCO_R50 + " --lr=.6"),
        ("recipe.weight_decay", 1e-6, MOCO_R50 + " --weight-decay"),
        ("recipe.warmup_epochs", 10, MOCO_R50 + " --warmup-epochs"),
        ("model.temperature", 1.0, MOCO_R50 + " --moco-t"),
        ("model.base_momentum", 0.99, MOCO_R50 + " --moco-m, --moco-m-cos"),
        ("model.mlp_dim", 4096, MOCO_R50 + " --moco-mlp-dim"),
        ("model.dim", 256, MOCO_R50 + " --moco-dim"),
        ("views.crop_scale", (0.2, 1.0), MOCO_R50 + " --crop-min=.2"),
        ("views.interpolation", "bilinear", MOCO_R50 + " RandomResizedCrop"),
    ]),
    # MoCo v3 ViT-B/16, 300 epochs
    *_rows(MOCO_V, [
        ("trainer.max_epochs", 300, MOCO_VIT),
        ("recipe.optimizer", "adamw", MOCO_VIT + " --optimizer=adamw"),
        ("recipe.base_lr", 1.5e-4, MOCO_VIT + " --lr=1.5e-4"),
        ("recipe.weight_decay", 0.1, MOCO_VIT + " --weight-decay=.1"),
        ("recipe.warmup_epochs", 40, MOCO_VIT + " --warmup-epochs=40"),
        ("model.temperature", 0.2, MOCO_VIT + " --moco-t=.2"),
        ("model.base_momentum", 0.99, MOCO_VIT + " --moco-m, --moco-m-cos"),
        ("model.freeze_patch_embed", True, MOCO_VIT + " --stop-grad-conv1"),
        ("model.mlp_dim", 4096, MOCO_VIT + " --moco-mlp-dim"),
        ("model.dim", 256, MOCO_VIT + " --moco-dim"),
        ("views.crop_scale", (0.08, 1.0), MOCO_VIT + " --crop-min 0.08"),
    ]),
    # SimCLR
    *_rows(("simclr_resnet50_hk",), [
        ("trainer.max_epochs", 100, SIMCLR + " --train_epochs=100"),
        ("recipe.optimizer", "lars", SIMCLR),
        ("recipe.base_lr", 0.3, SIMCLR + " --learning_rate=0.3"),
        ("recipe.weight_decay", 1e-6, SIMCLR + " --weight_decay=1e-6"),
        ("recipe.warmup_epochs", 10, SIMCLR + " --warmup_epochs"),
        ("model.temperature", 0.1, SIMCLR + " --temperature=0.1"),
        ("model.dim", 128, SIMCLR + " --proj_out_dim"),
        ("model.mlp_dim", 2048, SIMCLR + " (projection hidden = ResNet-50 width)"),
        ("views.crop_scale", (0.08, 1.0), SIMCLR_PAPER),
        ("views.jitter", (0.8, 0.8, 0.8, 0.2), SIMCLR_PAPER + " (colour strength 1.0)"),
        ("views.blur_p", (0.5, 0.5), SIMCLR_PAPER),
        ("views.solarize_p", (0.0, 0.0), SIMCLR_PAPER),
    ]),
    # SimMIM Swin-B, 100 epochs
    *_rows(("simmim_swinb_hk",), [
        ("trainer.max_epochs", 100, SIMMIM + " EPOCHS"),
        ("recipe.optimizer", "adamw", SIMMIM_CODE),
        ("recipe.base_lr", 1e-4, SIMMIM + " BASE_LR 2e-4 per 512"),
        ("recipe.min_lr_ratio", 0.05, SIMMIM + " MIN_LR 1e-5 / BASE_LR 2e-4"),
        ("recipe.weight_decay", 0.05, SIMMIM + " WEIGHT_DECAY"),
        ("recipe.warmup_epochs", 10, SIMMIM + " WARMUP_EPOCHS"),
        ("trainer.gradient_clip_val", 5.0, SIMMIM_CODE + " TRAIN.CLIP_GRAD"),
        ("drop_path.student", 0.0, SIMMIM + " DROP_PATH_RATE"),
        ("model.mask_ratio", 0.6, SIMMIM + " MASK_RATIO"),
        ("model.mask_patch_size", 32, SIMMIM + " MASK_PATCH_SIZE"),
        ("views.crop_scale", (0.67, 1.0), SIMMIM_CODE + " RandomResizedCrop"),
    ]),
    # SwAV, 400 epochs
    *_rows(("swav_resnet50_hk",), [
        ("trainer.max_epochs", 400, SWAV + " --epochs"),
        ("recipe.optimizer", "lars", SWAV + " (SGD in LARC, main_swav.py)"),
        ("recipe.base_lr", 0.3, SWAV + " --base_lr 4.8 at batch 4096"),
        ("recipe.min_lr_ratio", 0.001, SWAV + " --final_lr 0.0048 / 4.8"),
        ("recipe.weight_decay", 1e-6, SWAV + " --wd"),
        ("recipe.warmup_epochs", 10, SWAV + " --warmup_epochs"),
        ("model.temperature", 0.1, SWAV + " --temperature"),
        ("model.epsilon", 0.05, SWAV + " --epsilon"),
        ("model.sinkhorn_iterations", 3, SWAV + " --sinkhorn_iterations"),
        ("model.num_prototypes", 3000, SWAV + " --nmb_prototypes"),
        ("model.dim", 128, SWAV + " --feat_dim"),
        ("model.queue_length", 0, SWAV + " --queue_length"),
        ("model.freeze_prototypes_epochs", 1.0, SWAV + " --freeze_prototypes_niters 313"),
        ("views.global_scale", (0.14, 1.0), SWAV + " --min/max_scale_crops"),
        ("views.local_scale", (0.05, 0.14), SWAV + " --min/max_scale_crops"),
        ("views.num_local", 6, SWAV + " --nmb_crops 2 6"),
        ("views.global_size", 224, SWAV + " --size_crops"),
        ("views.local_size", 96, SWAV + " --size_crops"),
    ]),
]

SSL4GIE_BATCH = "SSL4GIE README section 3.1 global batch; lr scales linearly per 256 images"
LINEAR = "lr scales linearly per 256 images (the official rule)"
DIFFERENT: list[tuple[str, str, Any, Any, str, str]] = [
    # (config, key, official, ours, source, reason)
    ("barlow_twins_resnet50_hk", "global_batch", 2048, 1536, BT, SSL4GIE_BATCH),
    ("barlow_twins_resnet50_in1k", "global_batch", 2048, 1536, BT, "the HK run's; " + LINEAR),
    *[(c, "model.official_grad_scale", True, False, BT + " raw all_reduce(c)",
       "exact joint-batch gradient; the released run's is 1/W of it (barlowtwins issue #8)")
      for c in BARLOW],
    ("byol_resnet50_hk", "global_batch", 4096, 2048, BYOL_PAPER, "8 x 256; " + LINEAR),
    ("dino_resnet50_hk", "global_batch", 512, 1024, DINO_R50 + " 8 x 64", "8 x 128; " + LINEAR),
    ("mae_vitb16_hk", "global_batch", 4096, 768, MAE, SSL4GIE_BATCH),
    ("mae_vitb16_in1k", "global_batch", 4096, 768, MAE, "the HK run's; " + LINEAR),
    ("mocov3_resnet50_hk", "global_batch", 4096, 1536, MOCO_R50, SSL4GIE_BATCH),
    ("mocov3_resnet50_in1k", "global_batch", 4096, 1536, MOCO_R50, "the HK run's; " + LINEAR),
    ("mocov3_resnet50_in1k-s3", "global_batch", 4096, 2048, MOCO_R50,
     "one node of 8 x 256; --trainer.num_nodes 2 gives the official 4096 (docs/distributed.md)"),
    ("mocov3_vitb16_hk", "global_batch", 4096, 768, MOCO_VIT, SSL4GIE_BATCH),
    ("mocov3_vitb16_in1k", "global_batch", 4096, 768, MOCO_VIT, "the HK run's; " + LINEAR),
    ("simclr_resnet50_hk", "global_batch", 4096, 2048, SIMCLR, "8 x 256; " + LINEAR),
    ("simmim_swinb_hk", "global_batch", 2048, 1024, SIMMIM_CODE + " 16 x 128",
     "8 x 128; " + LINEAR),
    ("simmim_swinb_hk", "views.size", 192, 224, SIMMIM + " IMG_SIZE",
     "224 px / window 7, the geometry of timm's swin_base_patch4_window7_224 for fine-tuning"),
    ("swav_resnet50_hk", "global_batch", 4096, 2048, SWAV + " 64 x 64", "8 x 256; " + LINEAR),
]
# fmt: on


def _print_config(name: str) -> dict[str, Any]:
    """The config as ``ssl4gie pretrain fit --config pretrain/<name> --print_config`` prints it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        run("pretrain", ["fit", "--config", f"pretrain/{name}", "--print_config"])
    return yaml.safe_load(out.getvalue())


def _instance(spec: dict[str, Any], **extra: Any) -> Any:
    module, name = spec["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**spec["init_args"], **extra)


def _built(config: dict[str, Any]) -> Any:
    """The method of a resolved config, on the meta device (shapes only)."""
    init = dict(config["model"]["init_args"])
    views = init.pop("views")
    with torch.device("meta"):
        views = None if views is None else _instance(views)
        return _instance({**config["model"], "init_args": init}, views=views)


def _max_drop_path(module: torch.nn.Module) -> float:
    return max((m.drop_prob for m in module.modules() if isinstance(m, DropPath)), default=0.0)


def _effective(config: dict[str, Any], method: Any, key: str) -> Any:
    """The value ``key`` (module docstring) has in the run of ``config``."""
    kind, _, name = key.partition(".")
    if kind == "trainer":
        return config["trainer"][name]
    if kind == "model":
        return config["model"]["init_args"][name]
    if key == "global_batch":
        return config["trainer"]["devices"] * config["data"]["batch_size"]
    if kind == "recipe":
        return getattr(method.recipe, name)
    if kind == "attr":
        return getattr(method, name)
    if key == "drop_path.student":
        return _max_drop_path(method.backbone)
    if key == "drop_path.teacher":
        return _max_drop_path(method.momentum_encoder)
    groups = method.views.groups  # [(ViewParams, copies)]: globals (or the views), then locals
    first, last = groups[0], groups[-1]
    views = {
        "crop_scale": first[0].crop_scale, "global_scale": first[0].crop_scale,
        "local_scale": last[0].crop_scale, "num_local": last[1],
        "size": first[0].size, "global_size": first[0].size, "local_size": last[0].size,
        "interpolation": first[0].interpolation, "jitter": first[0].jitter,
        "blur_p": tuple(params.blur_p for params, _ in groups[:2]),
        "solarize_p": tuple(params.solarize_p for params, _ in groups[:2]),
    }  # fmt: skip
    return views[name]


@pytest.fixture(scope="session")
def effective() -> Any:
    """``effective(config, key)``, every config resolved and built once per session."""
    cache: dict[str, tuple[dict, Any]] = {}

    def value(name: str, key: str) -> Any:
        if name not in cache:
            config = _print_config(name)
            cache[name] = config, _built(config)
        return _effective(*cache[name], key)

    return value


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float):
        return actual == pytest.approx(expected, rel=1e-6)
    if isinstance(expected, tuple | list):
        return list(actual) == pytest.approx(list(expected), rel=1e-6) if expected else not actual
    return actual == expected


@pytest.mark.parametrize(("config", "key", "official", "source"), SAME,
                         ids=[f"{r[0]}:{r[1]}" for r in SAME])  # fmt: skip
def test_config_has_the_official_value(effective, config, key, official, source) -> None:
    actual = effective(config, key)
    assert _same(actual, official), f"{config} {key} = {actual!r}, official {official!r} ({source})"


@pytest.mark.parametrize(("config", "key", "official", "ours", "source", "reason"), DIFFERENT,
                         ids=[f"{r[0]}:{r[1]}" for r in DIFFERENT])  # fmt: skip
def test_deliberate_difference_is_pinned(effective, config, key, official, ours, source, reason):
    assert reason and not _same(ours, official)
    actual = effective(config, key)
    assert _same(actual, ours), f"{config} {key} = {actual!r}, pinned {ours!r} ({reason})"


def test_every_shipped_config_has_rows() -> None:
    covered = {row[0] for row in SAME} | {row[0] for row in DIFFERENT}
    assert covered == set(CONFIGS)
    assert len({(row[0], row[1]) for row in [*SAME, *DIFFERENT]}) == len(SAME) + len(DIFFERENT)
