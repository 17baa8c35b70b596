"""The readers: sample contract, bad-data handling, pairing, boxes, classes, concatenation."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader

from ssl4gie.data.datasets import (
    C3VD,
    CVCClinicDB,
    HyperKvasirLabeled,
    HyperKvasirUnlabeled,
    ImageFolderDataset,
    ImageNetFolder,
    KvasirSEG,
    cvc_sequence,
    hyperkvasir_classes,
)
from ssl4gie.data.nifti import NiftiSlices
from ssl4gie.data.synthetic import LAYOUTS, MIN_SIZE, synthesize
from ssl4gie.errors import InputError

from .conftest import save, save_nifti

SIZE = (16, 20)


def check_sample(sample: dict, keys: set[str]) -> None:
    """The contract of docs/architecture.md for the keys present."""
    assert set(sample) == keys | {"index"}
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, *SIZE)
    assert sample["index"].dtype == torch.int64 and sample["index"].ndim == 0
    if "label" in sample:
        assert sample["label"].dtype == torch.int64 and sample["label"].ndim == 0
    if "mask" in sample:
        assert sample["mask"].dtype == torch.uint8 and sample["mask"].shape == SIZE
    if "boxes" in sample:
        assert sample["boxes"].dtype == torch.float32 and sample["boxes"].shape[1] == 4
    if "depth" in sample:
        assert sample["depth"].dtype == torch.float32 and sample["depth"].shape == (1, *SIZE)


def test_salted_folder_survives_a_full_epoch(salted_folder):
    root, _ = salted_folder
    with pytest.warns(UserWarning, match="skipped 4 unreadable"):
        dataset = ImageFolderDataset(root, SIZE)
    assert len(dataset) == 10
    (root / "good.jpg").write_bytes(b"\xff\xd8\xff corrupted after indexing")
    with pytest.warns(UserWarning, match="replaced an unreadable sample.*good.jpg"):
        samples = [dataset[i] for i in range(len(dataset))]
    for sample in samples:
        check_sample(sample, {"image"})
    assert dataset.replaced == 1
    bad_position = [p.name for p in dataset.images].index("good.jpg")
    assert int(samples[bad_position]["index"]) == bad_position + 1
    loader = DataLoader(dataset, batch_size=4, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(loader)
    assert sum(len(batch["image"]) for batch in batches) == len(dataset)


def test_hyperkvasir_unlabeled_with_extra_top_folder(hyperkvasir_root):
    dataset = HyperKvasirUnlabeled(hyperkvasir_root.parent, SIZE)
    assert len(dataset) == 3
    check_sample(dataset[0], {"image"})


def test_missing_root_names_the_layout_and_source(tmp_path):
    with pytest.raises(InputError, match=r"unlabeled-images/images/\*\.jpg.*datasets\.simula"):
        HyperKvasirUnlabeled(tmp_path, SIZE)
    with pytest.raises(InputError, match=r"polyp\.grand-challenge\.org"):
        CVCClinicDB(tmp_path, SIZE)


@pytest.mark.parametrize(("task", "count"), [("landmarks", 6), ("findings", 12), ("all", 23)])
def test_hyperkvasir_labeled_classes(hyperkvasir_root, task, count):
    dataset = HyperKvasirLabeled(hyperkvasir_root, SIZE, task=task)
    assert dataset.classes == sorted(dataset.classes) == hyperkvasir_classes(task)
    two_cecum_images = "cecum" in dataset.classes
    assert len(dataset.classes) == count and len(dataset) == count + two_cecum_images
    assert sorted(set(dataset.targets)) == list(range(count))
    for i in (0, len(dataset) - 1):
        sample = dataset[i]
        check_sample(sample, {"image", "label"})
        assert dataset.classes[sample["label"]] == dataset.images[i].parent.name
    assert dataset.groups is None


def test_hyperkvasir_landmarks_are_the_six_folders():
    assert hyperkvasir_classes("landmarks") == [
        "cecum", "ileum", "pylorus", "retroflex-rectum", "retroflex-stomach", "z-line",
    ]  # fmt: skip
    with pytest.raises(InputError, match="did you mean 'findings'"):
        hyperkvasir_classes("finding")


def test_kvasir_seg_boxes_are_scaled(kvasir_seg_root):
    dataset = KvasirSEG(kvasir_seg_root, SIZE)
    assert [p.stem for p in dataset.images] == ["a", "b"]
    sample = dataset[0]
    check_sample(sample, {"image", "mask", "boxes"})
    # a is 40x60 (h x w) -> 16x20: x scales by 1/3, y by 0.4.
    assert sample["boxes"][0].tolist() == pytest.approx([2.0, 1.6, 10.0, 8.0])
    assert dataset[1]["boxes"].shape == (2, 4)
    assert set(sample["mask"].unique().tolist()) == {0, 1}


def test_kvasir_seg_structural_errors(kvasir_seg_root):
    save(torch.zeros(5, 5, dtype=torch.uint8).numpy(), kvasir_seg_root / "masks" / "b.jpg")
    with pytest.raises(InputError, match=r"masks.b\.jpg"):
        KvasirSEG(kvasir_seg_root, SIZE)
    (kvasir_seg_root / "masks" / "b.jpg").unlink()
    with pytest.raises(InputError, match=r"no mask for .*b\.jpg"):
        KvasirSEG(kvasir_seg_root, SIZE)


def test_kvasir_seg_box_outside_image(kvasir_seg_root):
    boxes = kvasir_seg_root / "kavsir_bboxes.json"
    boxes.write_text(boxes.read_text().replace('"xmax": 30, "ymax": 20', '"xmax": 61, "ymax": 20'))
    with pytest.raises(InputError, match=r"a\.jpg .*outside its 60x40 image"):
        KvasirSEG(kvasir_seg_root, SIZE)


def test_cvc_clinicdb_orders_by_number_and_knows_sequences(cvc_root):
    dataset = CVCClinicDB(cvc_root, SIZE)
    assert [int(p.stem) for p in dataset.images] == [1, 2, 10, 26]
    assert dataset.sequence_ids == dataset.groups == [1, 1, 1, 2]
    sample = dataset[2]
    check_sample(sample, {"image", "mask"})
    assert set(sample["mask"].unique().tolist()) == {0, 1}


def test_cvc_sequence_table_covers_612_frames():
    assert [cvc_sequence(n) for n in (1, 25, 26, 205, 206, 612)] == [1, 1, 2, 10, 11, 29]
    with pytest.raises(InputError):
        cvc_sequence(613)


def test_c3vd_pairs_by_integer_frame(c3vd_root):
    dataset = C3VD(c3vd_root, SIZE)
    assert len(dataset) == 8
    assert dataset.video_ids == ["cecum_t1_a"] * 4 + ["trans_t4_a"] * 4
    for i in range(len(dataset)):
        frame = int(dataset.images[i].name.split("_")[0])
        assert dataset.depths[i].name == f"{frame:04d}_depth.tiff"
    sample = dataset[3]  # frame 10: depth 10000 / 65535 * 100 mm everywhere
    check_sample(sample, {"image", "depth"})
    assert sample["depth"].unique().tolist() == pytest.approx([10000 / 65535 * 100])


def test_c3vd_video_choice_and_missing_depth(c3vd_root):
    assert C3VD(c3vd_root, SIZE, videos=["trans_t4_a"]).video_ids == ["trans_t4_a"] * 4
    with pytest.raises(InputError, match="did you mean 'cecum_t1_a'"):
        C3VD(c3vd_root, SIZE, videos=["cecum_t1_b"])
    (c3vd_root / "cecum_t1_a" / "0002_depth.tiff").unlink()
    with pytest.raises(InputError, match=r"0002_depth\.tiff"):
        C3VD(c3vd_root, SIZE)


def test_imagenet_folder(imagenet_root):
    dataset = ImageNetFolder(imagenet_root, "train", SIZE)
    assert dataset.classes == ["n01000001", "n02000002"]
    assert dataset.targets == [0, 0, 1, 1]
    check_sample(dataset[3], {"image", "label"})


def test_acdc_slices(acdc_root):
    dataset = NiftiSlices(acdc_root, SIZE, layout="acdc")
    assert len(dataset) == 6 and dataset.case_ids == ["patient001"] * 3 + ["patient002"] * 3
    sample = dataset[1]
    check_sample(sample, {"image", "mask"})
    assert set(sample["mask"].unique().tolist()) == {0, 1, 2, 3}
    assert torch.equal(sample["image"][0], sample["image"][2])


def test_acdc_label_shape_mismatch(acdc_root):
    gt = acdc_root / "patient002" / "patient002_frame01_gt.nii.gz"
    save_nifti(torch.zeros(16, 12, 2, dtype=torch.uint8).numpy(), gt)
    with pytest.raises(InputError, match="patient002_frame01_gt"):
        NiftiSlices(acdc_root, SIZE, layout="acdc")


def test_lung_slices(lung_root):
    dataset = NiftiSlices(lung_root, SIZE, layout="lung")
    assert len(dataset) == 4 and dataset.groups == ["lung_001"] * 4
    assert dataset[0]["mask"].sum() == 0 and set(dataset[1]["mask"].unique().tolist()) == {0, 1}


def test_concatenated_pretraining_sets_collate(salted_folder, hyperkvasir_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = ImageFolderDataset(salted_folder[0], SIZE)
    combined = ConcatDataset([folder, HyperKvasirUnlabeled(hyperkvasir_root, SIZE)])
    batches = list(DataLoader(combined, batch_size=5))
    assert sum(len(b["image"]) for b in batches) == len(combined) == 13
    assert batches[0]["image"].shape == (5, 3, *SIZE)


SYNTHETIC_READERS = {
    "hyperkvasir-unlabeled": (HyperKvasirUnlabeled, {}, {"image"}),
    "hyperkvasir-labeled": (HyperKvasirLabeled, {"task": "all"}, {"image", "label"}),
    "kvasir-seg": (KvasirSEG, {}, {"image", "mask", "boxes"}),
    "cvc-clinicdb": (CVCClinicDB, {}, {"image", "mask"}),
    "c3vd": (C3VD, {}, {"image", "depth"}),
    "imagefolder": (ImageNetFolder, {"split": "train"}, {"image", "label"}),
}


def test_every_generator_layout_has_a_reader():
    assert set(SYNTHETIC_READERS) == set(LAYOUTS)


@pytest.mark.parametrize("layout", sorted(SYNTHETIC_READERS))
def test_reads_what_the_generator_writes(layout, tmp_path):
    root = synthesize(layout, tmp_path / layout, n=23, size=MIN_SIZE, progress=False)
    reader, options, keys = SYNTHETIC_READERS[layout]
    dataset = reader(root, size=SIZE, **options)
    assert len(dataset) > 0
    for i in (0, len(dataset) - 1):
        check_sample(dataset[i], keys)
    if layout == "hyperkvasir-labeled":
        assert len(dataset.classes) == 23 and sorted(set(dataset.targets)) == list(range(23))
        check_sample(KvasirSEG(root, SIZE)[0], {"image", "mask", "boxes"})  # segmented-images
