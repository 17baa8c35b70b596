"""DVME: shapes, gradients, the one-backbone case written as the composed affine map, branch
re-normalisation, a short fit/test on synthetic HyperKvasir, checkpoint reload, the typed
arguments LightningCLI reads and bad input."""

import math

import lightning as L
import pytest
import torch
from jsonargparse import ArgumentError, ArgumentParser

from ssl4gie.data.datamodules import ClassificationDataModule
from ssl4gie.errors import InputError
from ssl4gie.tasks import MetaEmbeddingClassifier

SIZE = 32
MIXED = ["resnet18", "vit_tiny_patch16_224"]  # 512 and 192 features, different mean/std
MIXED_KWARGS = [{}, {"img_size": SIZE}]


def images(n=3):
    return torch.randn(n, 3, SIZE, SIZE)


@pytest.mark.parametrize("freeze", [True, False])
def test_shapes_and_gradients_reach_every_branch(freeze):
    model = MetaEmbeddingClassifier(
        MIXED, num_classes=4, freeze_backbones=freeze, backbone_kwargs=MIXED_KWARGS
    )
    logits = model(images())
    assert logits.shape == (3, 4)
    logits.sum().backward()
    for projection in model.head.projections:
        assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0
    for branch in model.backbone.branches:
        grads = [p.grad for p in branch.parameters()]
        if freeze:
            assert all(g is None for g in grads) and not branch.training
        else:
            assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_one_backbone_is_an_affine_map_of_its_embedding():
    """Attention over one token has weight 1: logits = C(F(W_o(W_v P e + b_v) + b_o)) with the
    value slice of the attention's input projection; compose the matrices by hand."""
    model = MetaEmbeddingClassifier(["resnet18"], num_classes=5, embed_dim=16, num_heads=4)
    model.eval()
    x = images(4)
    embedding = model.backbone.branches[0](x)  # same mean/std: no re-normalisation
    head = model.head
    e = head.attention.embed_dim
    w_v, b_v = head.attention.in_proj_weight[2 * e :], head.attention.in_proj_bias[2 * e :]
    out = head.attention.out_proj
    layers = [
        (head.projections[0].weight, head.projections[0].bias),
        (w_v, b_v),
        (out.weight, out.bias),
        (head.fuse.weight, head.fuse.bias),
        (head.classifier.weight, head.classifier.bias),
    ]
    matrix, bias = torch.eye(embedding.shape[1]), torch.zeros(embedding.shape[1])
    for weight, layer_bias in layers:  # y = W (M e + c) + b = (W M) e + (W c + b)
        matrix, bias = weight @ matrix, weight @ bias + layer_bias
    with torch.no_grad():
        expected = embedding @ matrix.T + bias
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_each_branch_sees_its_own_normalisation():
    model = MetaEmbeddingClassifier(MIXED, num_classes=3, backbone_kwargs=MIXED_KWARGS)
    seen = []
    model.backbone.branches[1].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    raw = torch.rand(2, 3, SIZE, SIZE)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (model.mean, model.std))
    model((raw - mean) / std)  # the task normalises with the first branch's statistics
    assert model.mean != (0.5, 0.5, 0.5)  # resnet18: ImageNet; the ViT: 0.5
    assert torch.allclose(seen[0], (raw - 0.5) / 0.5, atol=1e-5)


def test_fit_test_and_reload_through_the_classification_datamodule(synthetic, tmp_path):
    datamodule = ClassificationDataModule(
        str(synthetic("hyperkvasir-labeled", n=92)),
        options={"task": "landmarks"},
        size=SIZE,
        batch_size=4,
        num_workers=0,
    )
    model = MetaEmbeddingClassifier(MIXED, num_classes=6, backbone_kwargs=MIXED_KWARGS)
    frozen = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        limit_test_batches=1,
        num_sanity_val_steps=0,
        accelerator="cpu",
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    checkpoint = trainer.checkpoint_callback.last_model_path
    assert math.isfinite(trainer.callback_metrics["train_loss_epoch"])
    after = model.backbone.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)  # batch-norm stats included
    results = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    assert {"test_accuracy", "test_f1", "test_kappa", "test_auroc"} <= set(results)
    reloaded = MetaEmbeddingClassifier.load_from_checkpoint(checkpoint)  # hparams retype it
    model.eval()
    x = images(2)
    with torch.no_grad():
        assert torch.allclose(reloaded.eval()(x), model(x))


def test_bad_input_fails_with_one_line():
    with pytest.raises(InputError, match="backbones is empty"):
        MetaEmbeddingClassifier([], num_classes=3)
    with pytest.raises(InputError, match="backbone_kwargs has 1 entries for 2 backbones"):
        MetaEmbeddingClassifier(["resnet18", "resnet18"], num_classes=3, backbone_kwargs=[{}])
    with pytest.raises(InputError, match=r"num_heads \(5\) must divide embed_dim \(512\)"):
        MetaEmbeddingClassifier(["resnet18"], num_classes=3, num_heads=5)
    with pytest.raises(InputError, match="unknown backbone 'resnet1800'"):
        MetaEmbeddingClassifier(["resnet18", "resnet1800"], num_classes=3)
    with pytest.raises(InputError, match="num_classes must be >= 2"):
        MetaEmbeddingClassifier(["resnet18"], num_classes=1)


def test_lightning_cli_types_the_arguments():
    """LightningCLI builds its parser from the typed __init__ (jsonargparse) and checks values."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(MetaEmbeddingClassifier, "model")
    arguments = {
        "backbones": "[resnet18, vit_tiny_patch16_224]",
        "num_classes": "6",
        "backbone_kwargs": "[{}, {img_size: 32}]",
        "freeze_backbones": "false",
    }
    config = parser.parse_args([f"--model.{k}={v}" for k, v in arguments.items()])
    assert config.model.backbones == MIXED and config.model.backbone_kwargs == MIXED_KWARGS
    assert config.model.freeze_backbones is False
    with pytest.raises(ArgumentError, match="backbones"):
        parser.parse_args(["--model.backbones", "resnet18"])
