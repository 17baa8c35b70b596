"""The synthetic generator: determinism, the real layouts of shared/DATASETS.md, masks and boxes,
learnable classes, and bad input."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssl4gie.data.synthetic import LAYOUTS, STYLES, Style, render_frame, synthesize
from ssl4gie.data.synthetic import layouts as layouts_module
from ssl4gie.errors import InputError

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
KVASIR_ID = re.compile(r"^[a-z0-9]{25}$")
IMAGE_FILE = r"(\.jpg|\.JPEG|_color\.png)$|^Original/"

# The labelled HyperKvasir tree as shared/DATASETS.md lists it (written out, not imported).
HYPERKVASIR_TREE = {
    ("lower-gi-tract", "anatomical-landmarks"): ["cecum", "ileum", "retroflex-rectum"],
    ("lower-gi-tract", "pathological-findings"): [
        "hemorrhoids",
        "polyps",
        "ulcerative-colitis-grade-0-1",
        "ulcerative-colitis-grade-1",
        "ulcerative-colitis-grade-1-2",
        "ulcerative-colitis-grade-2",
        "ulcerative-colitis-grade-2-3",
        "ulcerative-colitis-grade-3",
    ],
    ("lower-gi-tract", "quality-of-mucosal-views"): ["bbps-0-1", "bbps-2-3", "impacted-stool"],
    ("lower-gi-tract", "therapeutic-interventions"): [
        "dyed-lifted-polyps",
        "dyed-resection-margins",
    ],
    ("upper-gi-tract", "anatomical-landmarks"): ["pylorus", "retroflex-stomach", "z-line"],
    ("upper-gi-tract", "pathological-findings"): [
        "barretts",
        "barretts-short-segment",
        "esophagitis-a",
        "esophagitis-b-d",
    ],
}
LANDMARKS = {"cecum", "ileum", "retroflex-rectum", "pylorus", "retroflex-stomach", "z-line"}


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a bool ``[H, W]`` mask, as bool masks."""
    labels = np.where(mask, np.arange(1, mask.size + 1).reshape(mask.shape), 0)
    while True:
        padded = np.pad(labels, 1)
        neighbours = [
            padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        ]
        grown = np.where(mask, np.max(neighbours, axis=0), 0)
        if np.array_equal(grown, labels):
            return [labels == value for value in np.unique(labels[mask])]
        labels = grown


def _extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def _json_boxes(entry: dict) -> set[tuple[int, int, int, int]]:
    return {(b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in entry["bbox"]}


# --- determinism --------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_same_seed_same_bytes_other_seed_other_images(tmp_path, layout):
    first = synthesize(layout, tmp_path / "a", n=6, size=64, seed=3, progress=False)
    again = synthesize(layout, tmp_path / "b", n=6, size=64, seed=3, progress=False)
    other = synthesize(layout, tmp_path / "c", n=6, size=64, seed=4, progress=False)
    assert _files(first) == _files(again)
    first_files = _files(first)
    images = [data for path, data in first_files.items() if re.search(IMAGE_FILE, path)]
    assert len(images) >= 6
    assert not set(images) & set(_files(other).values())


def test_render_frame_is_a_function_of_the_generator_state():
    style = STYLES["dyed-lifted-polyps"]
    one = render_frame(np.random.default_rng(5), 80, style, aspect=1.25)
    two = render_frame(np.random.default_rng(5), 80, style, aspect=1.25)
    assert one["image"].shape == (80, 100, 3) and one["image"].dtype == np.uint8
    assert one["depth"].dtype == np.float32 and one["mask"].dtype == bool
    for key in ("image", "mask", "depth", "fov"):
        np.testing.assert_array_equal(one[key], two[key])
    assert one["boxes"] == two["boxes"]


def test_frames_do_not_depend_on_generation_order(tmp_path):
    short = _files(synthesize("kvasir-seg", tmp_path / "a", n=2, size=64, progress=False))
    long = _files(synthesize("kvasir-seg", tmp_path / "b", n=4, size=64, progress=False))
    assert all(long[path] == data for path, data in short.items() if path.endswith(".jpg"))


# --- the layouts of shared/DATASETS.md ----------------------------------------------------


def test_hyperkvasir_unlabeled_layout(tmp_path):
    root = synthesize("hyperkvasir-unlabeled", tmp_path / "hk", n=5, size=64, progress=False)
    assert [p.name for p in root.iterdir()] == ["unlabeled-images"]
    frames = sorted((root / "unlabeled-images" / "images").iterdir())
    assert len(frames) == 5
    assert all(p.suffix == ".jpg" and UUID.match(p.stem) for p in frames)
    assert {_read(p).shape[:2] for p in frames} <= {(64, 64), (64, 80)}


def test_hyperkvasir_labeled_layout(tmp_path):
    root = synthesize("hyperkvasir-labeled", tmp_path / "hk", n=25, size=64, progress=False)
    labeled = root / "labeled-images"
    expected = {
        f"{tract}/{classification}/{finding}"
        for (tract, classification), findings in HYPERKVASIR_TREE.items()
        for finding in findings
    }
    found = {str(p.parent.relative_to(labeled)) for p in labeled.rglob("*.jpg")}
    assert found == expected
    with open(labeled / "image-labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["Video file", "Finding", "Organ", "Classification"]
    assert len(rows) == 25
    for row in rows:
        tract = {"Lower GI": "lower-gi-tract", "Upper GI": "upper-gi-tract"}[row["Organ"]]
        image = (
            labeled / tract / row["Classification"] / row["Finding"] / f"{row['Video file']}.jpg"
        )
        assert image.is_file() and UUID.match(row["Video file"])
    counts = {finding: 0 for finding in (f.split("/")[-1] for f in expected)}
    for row in rows:
        counts[row["Finding"]] += 1
    assert sorted(counts.values()) == [1] * 21 + [2, 2]


def test_hyperkvasir_segmented_images_pair_the_polyp_frames(tmp_path):
    root = synthesize("hyperkvasir-labeled", tmp_path / "hk", n=28, size=64, progress=False)
    polyps = root / "labeled-images" / "lower-gi-tract" / "pathological-findings" / "polyps"
    stems = {p.stem for p in polyps.glob("*.jpg")}
    segmented = root / "segmented-images"
    boxes = json.loads((segmented / "bounding-boxes.json").read_text())
    assert {p.stem for p in (segmented / "images").glob("*.jpg")} == stems == set(boxes)
    assert {p.stem for p in (segmented / "masks").glob("*.jpg")} == stems


def test_kvasir_seg_layout_masks_and_json(tmp_path):
    root = synthesize("kvasir-seg", tmp_path / "Kvasir-SEG", n=8, size=96, seed=1, progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["images", "kavsir_bboxes.json", "masks"]
    boxes = json.loads((root / "kavsir_bboxes.json").read_text())
    stems = {p.stem for p in (root / "images").glob("*.jpg")}
    assert len(stems) == 8 and all(KVASIR_ID.match(s) for s in stems)
    assert {p.stem for p in (root / "masks").glob("*.jpg")} == stems == set(boxes)
    for stem, entry in boxes.items():
        assert set(entry) == {"height", "width", "bbox"}
        assert all(set(b) == {"label", "xmin", "ymin", "xmax", "ymax"} for b in entry["bbox"])
        assert {b["label"] for b in entry["bbox"]} == {"polyp"}
        image, mask = _read(root / "images" / f"{stem}.jpg"), _read(root / "masks" / f"{stem}.jpg")
        assert image.shape[:2] == mask.shape == (entry["height"], entry["width"])
        assert mask.ndim == 2
        near_binary = (mask < 30) | (mask > 225)
        assert near_binary.mean() > 0.99
        polyp = mask >= 128
        assert {_extent(c) for c in _components(polyp)} == _json_boxes(entry)
        assert 1 <= len(entry["bbox"]) <= 3


def test_mask_jpeg_thresholded_at_128_reproduces_the_mask():
    style = STYLES["polyps"]
    for seed in range(20):
        frame = render_frame(np.random.default_rng(seed), 64 + 8 * seed, style)
        decoded = _jpeg_roundtrip(frame["mask"].astype(np.uint8) * 255)
        np.testing.assert_array_equal(decoded >= 128, frame["mask"])


def _jpeg_roundtrip(array: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=layouts_module.JPEG_QUALITY)
    return np.asarray(Image.open(buffer))


def test_cvc_clinicdb_layout(tmp_path):
    root = synthesize("cvc-clinicdb", tmp_path / "CVC-ClinicDB", n=12, size=72, progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["Ground Truth", "Original"]
    names = [f"{n}.tif" for n in range(1, 13)]
    for folder in ("Original", "Ground Truth"):
        assert sorted(p.name for p in (root / folder).iterdir()) == sorted(names)
    for name in names:
        image, mask = _read(root / "Original" / name), _read(root / "Ground Truth" / name)
        assert image.shape == (72, 96, 3) and image.dtype == np.uint8
        assert mask.shape == (72, 96) and set(np.unique(mask)) == {0, 255}


def test_c3vd_layout_padding_and_depth(tmp_path):
    root = synthesize("c3vd", tmp_path / "C3VD", n=11, size=64, progress=False)
    videos = sorted(p.name for p in root.iterdir())
    assert videos == sorted(["cecum_t1_a", "cecum_t1_b", "cecum_t2_a"])
    for video in videos:
        colours = sorted((root / video).glob("*_color.png"))
        depths = sorted((root / video).glob("*_depth.tiff"))
        numbers = sorted(int(p.name.split("_")[0]) for p in colours)
        assert numbers == list(range(len(colours))) and len(colours) in (3, 4)
        assert {p.name for p in colours} == {f"{t:04d}_color.png" for t in numbers}
        assert {p.name for p in depths} == {f"{t:04d}_depth.tiff" for t in numbers}
        for t in numbers:
            colour = _read(root / video / f"{t:04d}_color.png")
            raw = _read(root / video / f"{t:04d}_depth.tiff")
            assert colour.shape == (64, 80, 3) and raw.shape == (64, 80)
            assert raw.dtype == np.uint16
            depth_mm = raw.astype(np.float64) / 65535 * 100
            assert depth_mm.min() > 1.5 and depth_mm.max() <= 100
            assert np.median(np.abs(np.diff(depth_mm, axis=1))) < 2.0  # smooth


def test_c3vd_depth_encoding_is_linear_in_mm(tmp_path, monkeypatch):
    ramp_mm = np.linspace(0, 100, 64 * 80, dtype=np.float32).reshape(64, 80)

    def render_ramp(*args, **kwargs):
        return {**render_frame(*args, **kwargs), "depth": ramp_mm}

    monkeypatch.setattr(layouts_module, "render_frame", render_ramp)
    root = synthesize("c3vd", tmp_path / "C3VD", n=1, size=64, progress=False)
    raw = _read(root / "cecum_t1_a" / "0000_depth.tiff")
    np.testing.assert_array_equal(raw, np.round(ramp_mm / 100 * 65535).astype(np.uint16))
    assert raw.min() == 0 and raw.max() == 65535


def test_imagefolder_layout(tmp_path):
    root = synthesize("imagefolder", tmp_path / "imagenet", n=50, size=64, progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["train", "val"]
    train = sorted((root / "train").rglob("*.JPEG"))
    val = sorted((root / "val").rglob("*.JPEG"))
    assert len(train) == 27 and len(val) == 23
    assert {p.parent.name for p in train} == {p.parent.name for p in val}
    assert all(re.match(r"^n\d{8}$", p.parent.name) for p in train + val)
    assert all(re.match(rf"^{p.parent.name}_\d+\.JPEG$", p.name) for p in train)
    assert all(re.match(r"^ILSVRC2012_val_\d{8}\.JPEG$", p.name) for p in val)


# --- masks, boxes, classes ----------------------------------------------------------------


def test_boxes_are_the_extents_of_the_mask_components():
    style = Style(polyps=(1, 3))
    for seed in range(12):
        frame = render_frame(np.random.default_rng(seed), 96, style, aspect=1.25)
        assert frame["boxes"], "every frame of this style has a polyp"
        assert not (frame["mask"] & ~frame["fov"]).any()
        assert {_extent(c) for c in _components(frame["mask"])} == set(frame["boxes"])


def _features(image: np.ndarray) -> np.ndarray:
    """Colour and texture statistics inside the field of view: 12 numbers."""
    pixels = image.astype(np.float32) / 255
    fov = image.max(-1) > 12
    grey = pixels.mean(-1)
    grad = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1]
    inside = pixels[fov]
    chroma = inside / (inside.sum(-1, keepdims=True) + 1e-3)
    return np.concatenate(
        [
            inside.mean(0),
            inside.std(0),
            chroma.mean(0),
            chroma.std(0)[:2],
            [grad[fov[:-1, :-1]].mean()],
        ]
    )


def _nearest_centroid_accuracy(features, labels, train) -> float:
    mean, std = features[train].mean(0), features[train].std(0) + 1e-6
    z = (features - mean) / std
    classes = sorted(set(labels))
    centroids = np.stack([z[train & (labels == c)].mean(0) for c in classes])
    predicted = np.array(classes)[np.argmin(((z[:, None] - centroids) ** 2).sum(-1), axis=1)]
    return float((predicted[~train] == labels[~train]).mean())


@pytest.fixture(scope="module")
def labelled_features(tmp_path_factory):
    """Features and labels of 12 images per class, read back from the labelled layout."""
    root = tmp_path_factory.mktemp("hk") / "hyper-kvasir"
    synthesize("hyperkvasir-labeled", root, n=23 * 12, size=64, seed=11, progress=False)
    with open(root / "labeled-images" / "image-labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    paths = {p.stem: p for p in (root / "labeled-images").rglob("*.jpg")}
    features = np.stack([_features(_read(paths[row["Video file"]])) for row in rows])
    labels = np.array([row["Finding"] for row in rows])
    rank_in_class = np.array([np.sum(labels[:i] == label) for i, label in enumerate(labels)])
    return features, labels, rank_in_class < 8


def test_all_23_classes_are_learnable_from_colour_and_texture(labelled_features):
    features, labels, train = labelled_features
    accuracy = _nearest_centroid_accuracy(features, labels, train)
    assert accuracy > 3 / 23, accuracy


def test_the_6_landmarks_are_learnable_from_colour_and_texture(labelled_features):
    features, labels, train = labelled_features
    keep = np.isin(labels, sorted(LANDMARKS))
    accuracy = _nearest_centroid_accuracy(features[keep], labels[keep], train[keep])
    assert accuracy > 3 / 6, accuracy


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"layout": "kvasir-sg"}, "did you mean 'kvasir-seg'"),
        ({"n": 0}, "n must be an integer >= 1"),
        ({"size": 32}, "size must be an integer >= 64"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_arguments_raise_one_line_and_write_nothing(tmp_path, arguments, message):
    call = {"layout": "kvasir-seg", "root": tmp_path / "out", "n": 2, "size": 64, **arguments}
    with pytest.raises(InputError, match=re.escape(message)) as info:
        synthesize(**call, progress=False)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_root_must_be_a_new_or_empty_folder(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    (tmp_path / "file").write_text("x")
    for root, problem in [
        (tmp_path / "full", "is not empty"),
        (tmp_path / "file", "is a file"),
        (tmp_path / "file" / "sub", "lies inside the file"),
    ]:
        with pytest.raises(InputError, match=problem):
            synthesize("kvasir-seg", root, n=1, size=64, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "full"]
    (tmp_path / "empty").mkdir()
    assert synthesize("kvasir-seg", tmp_path / "empty", n=1, size=64, progress=False).is_dir()


def test_unwritable_root_is_an_input_error(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkdtemp", refuse)
    with pytest.raises(InputError, match=r"cannot write in .*Permission denied"):
        synthesize("kvasir-seg", tmp_path / "out", n=1, size=64, progress=False)


def test_a_failure_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def fail_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return render_frame(*args, **kwargs)

    monkeypatch.setattr(layouts_module, "render_frame", fail_on_third)
    with pytest.raises(RuntimeError, match="disk full"):
        synthesize("kvasir-seg", tmp_path / "out", n=5, size=64, progress=False)
    assert list(tmp_path.iterdir()) == []
