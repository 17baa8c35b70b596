"""load_backbone / load_transforms through real timm and huggingface_hub code, offline: export
folders, a hand-made Hub cache, Lightning checkpoints, and an upstream URL on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import threading
import time

import pytest
import timm
import torch

import ssl4gie
from ssl4gie.backbones import create_backbone
from ssl4gie.errors import InputError
from ssl4gie.zoo.cards import WeightsCard
from ssl4gie.zoo.hub import sha256_of

from .conftest import REVISION, features, lightning_checkpoint, place_in_cache


def _hub_card(**fields) -> WeightsCard:
    base = {"name": "resnet18-simclr-colon", "architecture": "resnet18", "method": "simclr"}
    base |= {"data": "colon", "license": "mit", "hub_id": "lab/r18", "available": True}
    return WeightsCard(**{**base, **fields})


def test_export_folder_loads_with_plain_timm(resnet18_export):
    folder, model = resnet18_export
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    plain = timm.create_model(f"local-dir:{folder}", pretrained=True)
    assert torch.equal(features(plain), features(model))
    assert plain.pretrained_cfg["license"] == "unknown"


def test_exported_readme_is_a_model_card(resnet18_export):
    from huggingface_hub import ModelCard

    card = ModelCard.load(resnet18_export[0] / "README.md")
    assert card.data.library_name == "timm" and "simclr" in card.data.tags
    assert card.data.datasets == ["Hyperkvasir-unlabelled"]
    assert "not for diagnosis" in card.text.lower() and "How it was trained" in card.text


def test_hub_repo_loads_from_the_cache_with_timm_and_ssl4gie(resnet18_export, hf_cache):
    folder, model = resnet18_export
    place_in_cache(hf_cache, "lab/r18", folder)
    plain = timm.create_model("hf-hub:lab/r18", pretrained=True, cache_dir=hf_cache)
    assert torch.equal(features(plain), features(model))
    for source in ("hf-hub:lab/r18", f"hf-hub:lab/r18@{REVISION}"):
        assert torch.equal(features(ssl4gie.load_backbone(source)), features(model))


def test_zoo_name_loads_hub_weights_with_the_card_preprocessing(resnet18_export, hf_cache):
    folder, model = resnet18_export
    place_in_cache(hf_cache, "lab/r18", folder)
    sha = sha256_of(folder / "model.safetensors")
    ssl4gie.register_backbone(
        _hub_card(mean=(0.5, 0.5, 0.5), crop_pct=0.9, revision=REVISION, sha256=sha)
    )
    loaded = ssl4gie.load_backbone("resnet18-simclr-colon")
    assert torch.equal(features(loaded), features(model))
    assert (
        loaded.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
        and loaded.pretrained_cfg["crop_pct"] == 0.9
    )
    assert torch.equal(features(create_backbone("resnet18-simclr-colon")), features(model))
    transform = ssl4gie.load_transforms("resnet18-simclr-colon")
    image = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    assert transform(image).shape == (3, 224, 224)
    assert ssl4gie.load_transforms(loaded)(image).shape == (3, 224, 224)


def test_features_only_and_a_new_head(resnet18_export):
    folder, _ = resnet18_export
    maps = ssl4gie.load_backbone(folder, features_only=True, out_indices=(2, 4))
    assert [m.shape[1] for m in maps(torch.zeros(1, 3, 64, 64))] == [128, 512]
    assert ssl4gie.load_backbone(folder, num_classes=5)(torch.zeros(1, 3, 64, 64)).shape == (1, 5)


def test_a_wrong_sha256_is_refused(resnet18_export, hf_cache):
    place_in_cache(hf_cache, "lab/r18", resnet18_export[0])
    ssl4gie.register_backbone(_hub_card(sha256="0" * 64))
    with pytest.raises(InputError, match="sha256"):
        ssl4gie.load_backbone("resnet18-simclr-colon")


def test_lightning_checkpoint_loads_directly(tmp_path):
    checkpoint, model = lightning_checkpoint("vit_tiny_patch16_224", img_size=32)
    torch.save(checkpoint, tmp_path / "last.ckpt")
    loaded = ssl4gie.load_backbone(tmp_path / "last.ckpt")
    assert torch.equal(features(loaded, 32), features(model, 32))
    assert torch.equal(
        features(create_backbone(str(tmp_path / "last.ckpt")), 32), features(model, 32)
    )


def test_offline_with_nothing_cached_fails_fast_with_the_repo_id(hf_cache):
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"lab/missing.*HF_HUB_OFFLINE.*hf download lab/missing"):
        ssl4gie.load_backbone("hf-hub:lab/missing")
    assert time.perf_counter() - start < 1.0


def test_unreachable_endpoint_fails_fast(hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"lab/missing.*127.0.0.1:9 cannot be reached"):
        ssl4gie.load_backbone("hf-hub:lab/missing")
    assert time.perf_counter() - start < 1.5


def test_unavailable_and_manual_entries_say_what_to_do(tmp_path):
    with pytest.raises(InputError, match="no weights are available"):
        ssl4gie.load_backbone("resnet50-byol-hk")
    with pytest.raises(
        InputError, match=r"drive\.google\.com.*ssl4gie zoo convert --format ssl4gie-mae"
    ):
        ssl4gie.load_backbone("vitb16-mae-hk", cache_dir=tmp_path)
    with pytest.raises(InputError, match="did you mean 'vitb16-mae-hk'"):
        ssl4gie.load_backbone("vitb16-mea-hk")


def test_pretrained_false_downloads_nothing():
    model = ssl4gie.load_backbone("vitb16-mae-hk", pretrained=False, img_size=32)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 768)
    assert model.pretrained_cfg["interpolation"] == "bicubic"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def upstream(tmp_path):
    """``(serve, url)``: a static HTTP server on 127.0.0.1 serving ``tmp_path / "www"``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_upstream_release_is_downloaded_converted_and_cached(upstream, tmp_path, monkeypatch):
    root, base_url = upstream
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    model = timm.create_model("resnet18", num_classes=0).eval()
    state = {f"module.{key}": value for key, value in model.state_dict().items()}
    torch.save({**state, "module.prototypes.weight": torch.zeros(3, 4)}, root / "swav_r18.pth.tar")
    card = _hub_card(hub_id=None, url=f"{base_url}/swav_r18.pth.tar", format="swav")
    ssl4gie.register_backbone(
        dataclasses.replace(card, sha256=sha256_of(root / "swav_r18.pth.tar"))
    )
    loaded = ssl4gie.load_backbone("resnet18-simclr-colon", cache_dir=tmp_path / "cache")
    assert torch.equal(features(loaded), features(model))
    converted = tmp_path / "cache" / "ssl4gie" / "resnet18-simclr-colon"
    assert (converted / "model.safetensors").is_file()
    assert not list((converted.parent / "downloads").iterdir())  # the raw file is not kept
    (root / "swav_r18.pth.tar").unlink()  # the second load needs only the cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = ssl4gie.load_backbone("resnet18-simclr-colon", cache_dir=tmp_path / "cache")
    assert torch.equal(features(again), features(model))


def test_upstream_sha256_mismatch_is_refused(upstream, tmp_path, monkeypatch):
    root, base_url = upstream
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), root / "r18.pth")
    card = _hub_card(hub_id=None, url=f"{base_url}/r18.pth", format="torchvision", sha256="1" * 64)
    ssl4gie.register_backbone(card)
    with pytest.raises(InputError, match="sha256"):
        ssl4gie.load_backbone("resnet18-simclr-colon", cache_dir=tmp_path / "cache")
