"""Small fixtures written directly in the real on-disk layouts (a few tiny files each)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from ssl4gie.data.datasets import HYPERKVASIR_CLASSES

RNG = np.random.default_rng(0)


def rgb(height: int = 24, width: int = 32) -> np.ndarray:
    """A random uint8 ``[H, W, 3]`` image."""
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


def save(array: np.ndarray, path: Path, fmt: str | None = None, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, fmt, **options)
    return path


def jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _index_cache_in_tmp(tmp_path, monkeypatch):
    """Keep the default index cache out of the real ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def salted_folder(tmp_path) -> tuple[Path, set[str]]:
    """A nested folder with readable images in odd modes and every kind of bad file.

    Returns the root and the relative paths of the unreadable files.
    """
    root = tmp_path / "salted"
    save(rgb(), root / "good.jpg")
    save(rgb(), root / "nested" / "deeper" / "upper.JPG")
    Image.fromarray(rgb()).convert("CMYK").save(root / "cmyk.jpg")
    save(rgb()[..., 0], root / "gray.jpg")
    Image.fromarray(rgb()).convert("RGBA").save(root / "rgba.png")
    Image.fromarray(rgb()).convert("P").save(root / "palette.png")
    save(RNG.integers(0, 65536, (24, 32), dtype=np.uint16), root / "sixteen.png")
    save(rgb(), root / "png_named.jpg", "PNG")
    save(rgb(6, 5), root / "tiny.jpg")
    save(rgb(), root / "scan.tif")
    (root / "empty.jpg").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(jpeg_bytes(rgb(64, 64))[:400])
    (root / "not_an_image.jpg").write_text("this is a text file")
    (root / "nested" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + RNG.bytes(600))
    (root / "notes.txt").write_text("ignored: not an image suffix")
    save(rgb(), root / ".hidden.jpg")
    bad = {"empty.jpg", "truncated.jpg", "not_an_image.jpg", "nested/corrupt.jpg"}
    return root, bad


@pytest.fixture
def hyperkvasir_root(tmp_path) -> Path:
    """``<tmp>/download/hyper-kvasir`` (an extra top folder): 3 unlabeled frames and one labelled
    image per class (two for cecum), with image-labels.csv."""
    root = tmp_path / "download" / "hyper-kvasir"
    for k in range(3):
        save(rgb(), root / "unlabeled-images" / "images" / f"frame{k}.jpg")
    labeled = root / "labeled-images"
    rows = ["Video file,Organ,Finding,Classification"]
    for category, names in HYPERKVASIR_CLASSES.items():
        for name in names:
            for k in range(2 if name == "cecum" else 1):
                save(rgb(), labeled / "lower-gi-tract" / category / name / f"{name}-{k}.jpg")
                rows.append(f"{name}-{k},Lower GI,{name},{category}")
    (labeled / "image-labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _kvasir_entry(height: int, width: int, boxes: list[tuple[int, int, int, int]]) -> dict:
    keys = ("xmin", "ymin", "xmax", "ymax")
    bbox = [{"label": "polyp", **dict(zip(keys, box, strict=True))} for box in boxes]
    return {"height": height, "width": width, "bbox": bbox}


@pytest.fixture
def kvasir_seg_root(tmp_path) -> Path:
    """Kvasir-SEG with two images: ``a`` (40x60, one box) and ``b`` (30x30, two boxes)."""
    root = tmp_path / "Kvasir-SEG"
    specs = {"a": (40, 60, [(6, 4, 30, 20)]), "b": (30, 30, [(0, 0, 10, 10), (15, 12, 30, 30)])}
    for name, (height, width, boxes) in specs.items():
        save(rgb(height, width), root / "images" / f"{name}.jpg")
        mask = np.zeros((height, width), np.uint8)
        for x0, y0, x1, y1 in boxes:
            mask[y0:y1, x0:x1] = 255
        save(mask, root / "masks" / f"{name}.jpg")
    entries = {name: _kvasir_entry(*spec) for name, spec in specs.items()}
    (root / "kavsir_bboxes.json").write_text(json.dumps(entries))
    return root


@pytest.fixture(params=["tif", "png"])
def cvc_root(request, tmp_path) -> Path:
    """CVC-ClinicDB frames 1, 2, 10 and 26, as TIFF (``Original/``) or PNG (``PNG/Original``)."""
    root = tmp_path / "CVC-ClinicDB"
    folder = root if request.param == "tif" else root / "PNG"
    for n in (1, 2, 10, 26):
        save(rgb(18, 24), folder / "Original" / f"{n}.{request.param}")
        mask = np.zeros((18, 24), np.uint8)
        mask[4:10, 5:12] = 255
        save(mask, folder / "Ground Truth" / f"{n}.{request.param}")
    return root


@pytest.fixture
def c3vd_root(tmp_path) -> Path:
    """Two videos with frames 0, 1, 2 and 10; each depth map is filled with 1000 * frame."""
    root = tmp_path / "C3VD"
    for video in ("cecum_t1_a", "trans_t4_a"):
        for n in (0, 1, 2, 10):
            save(rgb(20, 25), root / video / f"{n}_color.png")
            depth = np.full((20, 25), 1000 * n, np.uint16)
            save(depth, root / video / f"{n:04d}_depth.tiff")
            save(depth, root / video / f"{n:04d}_normals.tiff")
        (root / video / "pose.txt").write_text("")
    return root


@pytest.fixture
def imagenet_root(tmp_path) -> Path:
    root = tmp_path / "imagenet"
    for wnid in ("n02000002", "n01000001"):
        for k in range(2):
            save(rgb(), root / "train" / wnid / f"{wnid}_{k}.JPEG")
    return root


def save_nifti(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4)), path)


@pytest.fixture
def acdc_root(tmp_path) -> Path:
    """Two ACDC patients, one frame each, volumes ``[X=16, Y=12, Z=3]`` with labels 0..3."""
    root = tmp_path / "ACDC" / "training"
    for patient in ("patient001", "patient002"):
        volume = RNG.normal(300, 80, (16, 12, 3)).astype(np.float32)
        labels = np.zeros((16, 12, 3), np.uint8)
        labels[2:6, 3:5], labels[6:9, 3:5], labels[9:12, 3:5] = 1, 2, 3
        save_nifti(volume, root / patient / f"{patient}_frame01.nii.gz")
        save_nifti(labels, root / patient / f"{patient}_frame01_gt.nii.gz")
        save_nifti(volume[..., None], root / patient / f"{patient}_4d.nii.gz")
    return root


@pytest.fixture
def lung_root(tmp_path) -> Path:
    """Decathlon Task06_Lung layout: one CT case ``[16, 16, 4]`` in HU with a tumour label."""
    root = tmp_path / "Task06_Lung"
    volume = RNG.uniform(-1200, 600, (16, 16, 4)).astype(np.float32)
    labels = np.zeros((16, 16, 4), np.uint8)
    labels[4:8, 4:8, 1:3] = 1
    save_nifti(volume, root / "imagesTr" / "lung_001.nii.gz")
    save_nifti(labels, root / "labelsTr" / "lung_001.nii.gz")
    return root
