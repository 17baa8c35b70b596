"""The readers on real frames (tests/conftest.py ``realdata``), arranged by symlinks in tmp_path
into each release's layout. Independent references: PIL decodes, the boxes json, kornia's
connected components."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from ssl4gie.data.datamodules import SegmentationDataModule
from ssl4gie.data.datasets import C3VD, HyperKvasirUnlabeled, KvasirSEG, SegFolder
from ssl4gie.data.decode import read_depth_c3vd, read_image, read_mask
from ssl4gie.tasks import SegmentationTask

pytestmark = pytest.mark.realdata

C3VD_FRAMES = range(0, 271, 30)
STRAY_PIXEL_MASK = "cju0roawvklrq0799vmjorwfv"  # foreground at (0, 0) in the release's mask


def link(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)
    return target


def link_all(source: Path, target: Path, pattern: str = "*") -> Path:
    """Symlink every file of ``source`` matching ``pattern`` into the new folder ``target``."""
    for path in sorted(source.glob(pattern)):
        link(path, target / path.name)
    return target


@pytest.fixture
def kvasir_root(realdata, tmp_path) -> Path:
    """``Kvasir-SEG/{images,masks}/<id>.jpg`` + ``kavsir_bboxes.json``, as the release unzips."""
    root = tmp_path / "Kvasir-SEG"
    for folder in ("images", "masks"):
        link_all(realdata / "kvasir-seg" / folder, root / folder)
    link(realdata / "kvasir-seg" / "kavsir_bboxes.json", root / "kavsir_bboxes.json")
    return root


def pil_mask(path: Path) -> np.ndarray:
    """The independent threshold: PIL's luma >= 128."""
    return np.asarray(Image.open(path).convert("L")) >= 128


def components(mask: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """xyxy extents (max exclusive) of the 8-connected foreground components of ``[H, W]``:
    the runs of each row, joined by union-find with the runs they touch in the row above."""
    runs, parent, above = [], [], []

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for y, row in enumerate(mask.numpy().astype(np.int8)):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], row, [0]))))
        current = []
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            parent.append(len(runs))
            for other in above:
                if runs[other][1] <= stop and start <= runs[other][2]:  # touching, diagonals too
                    parent[root(other)] = root(len(runs))
            current.append(len(runs))
            runs.append((y, int(start), int(stop)))
        above = current
    extents = {}
    for i, (y, start, stop) in enumerate(runs):
        x0, y0, x1, y1 = extents.get(root(i), (start, y, stop, y + 1))
        extents[root(i)] = (min(x0, start), min(y0, y), max(x1, stop), max(y1, y + 1))
    return sorted(extents.values())


def test_real_kvasir_seg_masks_and_boxes(kvasir_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the release's boxes are all kept: no warning
        dataset = KvasirSEG(kvasir_root, 64, full_masks=True)
    entries = json.loads((kvasir_root / "kavsir_bboxes.json").read_text())
    assert len(dataset) == 5 and sorted(p.stem for p in dataset.images) == sorted(entries)
    for i, path in enumerate(dataset.images):
        sample, entry = dataset[i], entries[path.stem]
        full = sample["full_mask"]
        assert full.shape == (entry["height"], entry["width"])
        assert set(full.unique().tolist()) == {0, 1}
        assert set(sample["mask"].unique().tolist()) <= {0, 1}
        assert np.array_equal(full.numpy() == 1, pil_mask(dataset.masks[i])), path.name
        corners = [[b[k] for k in ("xmin", "ymin", "xmax", "ymax")] for b in entry["bbox"]]
        scale = torch.tensor([64 / entry["width"], 64 / entry["height"]] * 2)
        assert torch.allclose(sample["boxes"], torch.tensor(corners, dtype=torch.float32) * scale)
    stray = dataset.images.index(kvasir_root / "images" / f"{STRAY_PIXEL_MASK}.jpg")
    assert int(dataset[stray]["full_mask"][0, 0]) == 1  # kept as the release has it


def gap(box, other) -> int:
    """The largest difference between the corners of two xyxy boxes, in px."""
    return max(abs(a - b) for a, b in zip(box, other, strict=True))


def test_real_kvasir_boxes_match_mask_components(kvasir_root):
    """Every box of the json is within 1 px of a mask component's extent, or (the 3-px-wide box
    at the right edge of one image) inside one; every component larger than 1 px has a box."""
    entries = json.loads((kvasir_root / "kavsir_bboxes.json").read_text())
    inside_only = []
    for stem, entry in entries.items():
        found = components(read_mask(kvasir_root / "masks" / f"{stem}.jpg"))
        real = [c for c in found if (c[2] - c[0]) * (c[3] - c[1]) > 1]  # not the stray pixel
        boxes = [tuple(b[k] for k in ("xmin", "ymin", "xmax", "ymax")) for b in entry["bbox"]]
        for box in boxes:
            if min(gap(box, comp) for comp in real) > 1:
                assert any(
                    box[0] >= c[0] and box[1] >= c[1] and box[2] <= c[2] and box[3] <= c[3]
                    for c in real
                ), (stem, box, real)
                inside_only.append((stem, box))
        for comp in real:
            assert any(gap(box, comp) <= 1 for box in boxes)
    assert inside_only == [(STRAY_PIXEL_MASK, (619, 151, 622, 285))]


def test_real_hyperkvasir_unlabeled_frames(realdata, tmp_path):
    root = tmp_path / "hyper-kvasir"
    link_all(realdata / "hyperkvasir/unlabeled-images/images", root / "unlabeled-images/images")
    dataset = HyperKvasirUnlabeled(tmp_path, 64)
    assert len(dataset) == 4
    for i in range(4):
        assert dataset[i]["image"].shape == (3, 64, 64)
        assert Image.open(dataset.images[i]).size == (720, 576)


def arrange_c3vd(source: Path, root: Path, release: str) -> Path:
    """The real colour/depth pairs of ``cecum_t1_a`` in one release layout (C3VD page)."""
    folder = {
        "v1-nested": root / "cecum_t1_a_under_review" / "c1v1",
        "v2-flat": root / "cecum_t1_a_under_review",
        "v3-current": root / "cecum_t1_a",
        "as-downloaded": root / "cecum_t1_a",  # the source folder: unpadded colour, padded depth
    }[release]
    for n in C3VD_FRAMES:
        color = f"{n}" if release in ("v1-nested", "as-downloaded") else f"{n:04d}"
        depth = f"{n}" if release == "v1-nested" else f"{n:04d}"
        link(source / f"{n}_color.png", folder / f"{color}_color.png")
        link(source / f"{n:04d}_depth.tiff", folder / f"{depth}_depth.tiff")
    return root


@pytest.mark.parametrize("release", ["v1-nested", "v2-flat", "v3-current", "as-downloaded"])
def test_real_c3vd_layouts_and_invalid_depth(realdata, tmp_path, release):
    source = realdata / "c3vd" / "cecum_t1_a"
    dataset = C3VD(arrange_c3vd(source, tmp_path / "C3VD", release), 32)
    assert dataset.video_ids == ["cecum_t1_a"] * 10
    frames = [int(path.name.split("_")[0]) for path in dataset.depths]
    assert frames == list(C3VD_FRAMES)
    assert [int(p.name.split("_")[0]) for p in dataset.images] == frames
    raw = np.asarray(Image.open(source / "0000_depth.tiff")).astype(np.int64)
    depth = read_depth_c3vd(dataset.depths[0])[0].numpy()
    invalid = (raw == 0) | (raw == 65535)
    assert np.array_equal(depth == 0, invalid)
    assert 0.02 < (raw == 65535).mean() < 0.03  # 2.41 % of frame 0000
    assert np.allclose(depth[~invalid], raw[~invalid] / 65535 * 100, rtol=1e-6)
    assert dataset[0]["depth"].shape == (1, 32, 32)


def test_real_c3vd_pad_square(realdata, tmp_path):
    """1350x1080 on a 1350x1350 canvas: 135 rows of padding above and below, depth 0 there."""
    root = arrange_c3vd(realdata / "c3vd" / "cecum_t1_a", tmp_path / "C3VD", "v3-current")
    sample = C3VD(root, None, pad_square=True)[0]
    assert sample["image"].shape == (3, 1350, 1350) and sample["depth"].shape == (1, 1350, 1350)
    assert not sample["depth"][0, :135].any() and not sample["depth"][0, -135:].any()
    assert not sample["image"][:, :135].any()
    original = read_image(root / "cecum_t1_a" / "0000_color.png")
    assert torch.equal(sample["image"][:, 135:-135], original)


def test_real_cvc_sequence_as_seg_folder(realdata, tmp_path):
    """``fine_3_<k>_fram.jpg`` pairs with ``fine_3_<k>_mask.jpg``, in time order k = 1..20."""
    root = tmp_path / "sequence"
    for folder in ("images", "masks"):
        link_all(realdata / "cvc-clinicdb-sequence" / folder, root / folder)
    dataset = SegFolder(root, 32, full_masks=True)
    assert [p.name for p in dataset.images] == [f"fine_3_{k}_fram.jpg" for k in range(1, 21)]
    assert [p.name for p in dataset.masks] == [f"fine_3_{k}_mask.jpg" for k in range(1, 21)]
    for i in (0, 19):
        full = dataset[i]["full_mask"]
        assert full.shape == (288, 384) and set(full.unique().tolist()) == {0, 1}
        assert np.array_equal(full.numpy() == 1, pil_mask(dataset.masks[i]))


def test_every_real_file_decodes_at_its_stated_size(realdata):
    """Sizes from the README (and the boxes json for Kvasir-SEG), checked against PIL."""
    entries = json.loads((realdata / "kvasir-seg" / "kavsir_bboxes.json").read_text())
    expected = {}
    for stem, entry in entries.items():
        for folder in ("images", "masks"):
            expected[realdata / "kvasir-seg" / folder / f"{stem}.jpg"] = (
                entry["height"], entry["width"],
            )  # fmt: skip
    for path in (realdata / "hyperkvasir").rglob("*.jpg"):
        expected[path] = (576, 720)
    for path in (realdata / "cvc-clinicdb-sequence").rglob("*.jpg"):
        expected[path] = (288, 384)
    for path in (realdata / "c3vd").rglob("*_color.png"):
        expected[path] = (1080, 1350)
    assert len(expected) == 10 + 4 + 40 + 10
    for path, size in expected.items():
        image = read_image(path)
        assert image.dtype == torch.uint8 and image.shape == (3, *size), path
        assert Image.open(path).size == size[::-1]
    depths = sorted((realdata / "c3vd").rglob("*_depth.tiff"))
    assert len(depths) == 10
    for path in depths:
        assert np.asarray(Image.open(path)).dtype == np.uint16
        assert read_depth_c3vd(path).shape == (1, 1080, 1350)


@pytest.mark.slow
def test_real_kvasir_seg_two_step_finetune(kvasir_root, tmp_path):
    """2 training steps and one validation batch scored at the original mask sizes, on CPU."""
    start = time.perf_counter()
    data = SegmentationDataModule(
        str(kvasir_root), size=64, batch_size=2, num_workers=0, fractions=(0.6, 0.2, 0.2),
        options={"full_masks": True},
    )  # fmt: skip
    task = SegmentationTask("resnet18", num_classes=2, decoder="fpn")
    trainer = L.Trainer(
        max_steps=2, limit_val_batches=1, accelerator="cpu", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(task, data)
    assert trainer.global_step == 2
    assert torch.isfinite(trainer.callback_metrics["train_loss_step"])
    assert 0.0 <= float(trainer.callback_metrics["val_dice"]) <= 1.0
    print(f"2-step fine-tune with validation: {time.perf_counter() - start:.1f} s")
