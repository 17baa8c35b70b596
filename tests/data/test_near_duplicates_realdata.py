"""Near-duplicate grouping on real frames: one CVC-ClinicDB sequence, Kvasir-SEG, HyperKvasir
frames with their overlay, and C3VD frames 30 apart (the ``realdata`` fixture)."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
import torch

from ssl4gie.cli import main
from ssl4gie.data.decode import read_image, resize_image
from ssl4gie.data.near_duplicates import (
    DEFAULT_THRESHOLD,
    descriptor_distances,
    name_sequences,
    near_duplicate_groups,
    scene_descriptors,
)

pytestmark = pytest.mark.realdata
SIZE = 224  # the datamodules' default load size


@pytest.fixture(scope="module")
def frames(realdata):
    """``(paths, source per frame, descriptors)`` of the 39 real frames, CVC-ClinicDB in time
    order first."""
    sequence = realdata / "cvc-clinicdb-sequence" / "images"
    paths = [sequence / f"fine_3_{k}_fram.jpg" for k in range(1, 21)]
    sources = ["cvc"] * 20
    for source, folder, pattern in [
        ("kvasir", realdata / "kvasir-seg" / "images", "*.jpg"),
        ("hyperkvasir", realdata / "hyperkvasir" / "unlabeled-images" / "images", "*.jpg"),
        ("c3vd", realdata / "c3vd" / "cecum_t1_a", "*_color.png"),
    ]:
        found = sorted(folder.glob(pattern))
        paths += found
        sources += [source] * len(found)
    images = [resize_image(read_image(path), SIZE) for path in paths]
    return paths, np.array(sources), scene_descriptors(torch.stack(images))


def all_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    first, second = np.array(list(itertools.combinations(range(n), 2))).T
    return first, second


def test_small_camera_moves_of_the_real_sequence_link(frames):
    _, sources, descriptors = frames
    steps = descriptor_distances(descriptors, np.arange(19), np.arange(1, 20))
    # Consecutive frames under small motion (1-2 ... 4-5, 6-7, 17-18 ... 19-20) link; the
    # sequence's large moves (e.g. 15-16) do not: its frame names join those.
    assert (steps <= DEFAULT_THRESHOLD).sum() >= 8
    groups = near_duplicate_groups(descriptors[sources == "cvc"])
    assert len(set(groups.tolist())) < 20 and groups[0] == groups[4] == groups[19]


def test_distinct_real_scenes_stay_apart_despite_the_shared_overlay(frames):
    _, sources, descriptors = frames
    first, second = all_pairs(len(sources))
    same_video = (sources[first] == sources[second]) & np.isin(sources[first], ["cvc", "c3vd"])
    distances = descriptor_distances(descriptors, first[~same_video], second[~same_video])
    # Other datasets, other patients, and the 4 HyperKvasir frames that share the black
    # border, the green position box and the burnt-in text: all clearly apart.
    assert distances.min() > DEFAULT_THRESHOLD + 0.15


def test_real_frames_group_by_sequence_and_scene(frames):
    paths, sources, descriptors = frames
    groups = near_duplicate_groups(descriptors, known_groups=name_sequences(paths))
    assert len(set(groups[sources == "cvc"].tolist())) == 1  # the 20-frame sequence
    assert len(set(groups[sources == "c3vd"].tolist())) == 1  # one video, 30 frames apart
    singles = groups[np.isin(sources, ["kvasir", "hyperkvasir"])]
    assert len(set(singles.tolist())) == 9
    for source in ("cvc", "c3vd"):
        assert not np.isin(groups[sources == source], groups[sources != source]).any()


@pytest.mark.slow
def test_duplicates_command_on_the_real_sequence(realdata, tmp_path, capsys):
    root = realdata / "cvc-clinicdb-sequence" / "images"
    out, sheet = tmp_path / "groups.csv", tmp_path / "sheet.png"
    argv = ["data", "duplicates", str(root), "--out", str(out), "--png", str(sheet)]
    assert main([*argv, "--sequences-from-names", "--quiet"]) == 0
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20 and {row["group"] for row in rows} == {"0"}
    assert sheet.read_bytes().startswith(b"\x89PNG")
    assert "20 images in 1 groups" in capsys.readouterr().out
    kvasir = realdata / "kvasir-seg" / "images"
    assert main(["data", "duplicates", str(kvasir), "--out", str(out), "--quiet"]) == 0
    with out.open(newline="") as handle:
        assert len({row["group"] for row in csv.DictReader(handle)}) == 5


def test_leak_aware_split_joins_the_real_sequence_by_frame_names(realdata):
    """The CVC sequence in the generic segmentation layout: appearance alone leaves several
    groups (the camera moves far); with frame names joined it is one group, which a leak-aware
    split cannot divide into train/val/test: one warning says so."""
    from ssl4gie.data.datamodules import SegmentationDataModule, open_dataset

    def data(names: bool) -> SegmentationDataModule:
        return SegmentationDataModule(
            str(realdata / "cvc-clinicdb-sequence"), layout="seg-folder", split="leak-aware",
            size=64, num_workers=0, sequences_from_names=names,
        )  # fmt: skip

    for names, expected_groups in ((False, range(2, 20)), (True, [1])):
        module = data(names)
        module.dataset = open_dataset(module.source, module.size)
        assert len(set(module.image_groups().tolist())) in expected_groups
    with pytest.warns(UserWarning, match=r"left val and test empty: 20 images in 1 near-dup"):
        data(True).setup()
