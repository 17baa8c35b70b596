"""The readers: sample contract, bad-data handling, pairing, boxes, classes, concatenation."""

from __future__ import annotations

import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader

from ssl4gie.data.datamodules import LAYOUTS as LAYOUTS_OF_DATAMODULE
from ssl4gie.data.datamodules import (
    ClassificationDataModule,
    DepthDataModule,
    collate_samples,
)
from ssl4gie.data.datasets import (
    C3VD,
    CVCClinicDB,
    HyperKvasirLabeled,
    HyperKvasirUnlabeled,
    ImageFolderDataset,
    ImageNetFolder,
    KvasirSEG,
    SegFolder,
    cvc_sequence,
    hyperkvasir_classes,
)
from ssl4gie.data.nifti import NiftiSlices
from ssl4gie.data.synthetic import LAYOUTS, MIN_SIZE, synthesize
from ssl4gie.data.synthetic.layouts import HYPERKVASIR_CLASSES as HYPERKVASIR_TREE
from ssl4gie.errors import InputError
from ssl4gie.tasks import SegmentationTask

from .conftest import RNG, rgb, save, save_nifti

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


def test_kvasir_seg_bad_boxes_are_dropped_with_one_warning(kvasir_seg_root):
    boxes = kvasir_seg_root / "kavsir_bboxes.json"
    text = boxes.read_text().replace('"xmax": 30, "ymax": 20', '"xmax": 61, "ymax": 20')
    boxes.write_text(text.replace('"xmin": 15, "ymin": 12', '"xmin": 30, "ymin": 12'))
    with pytest.warns(UserWarning) as caught:
        dataset = KvasirSEG(kvasir_seg_root, SIZE)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and "\n" not in "".join(messages)
    assert re.search(r"1 of 1 boxes of .*a\.jpg: empty or outside its 60x40 image", messages[0])
    assert re.search(r"1 of 2 boxes of .*b\.jpg", messages[1])
    assert dataset.boxes[0].shape == (0, 4)
    # b is 30x30 -> 16x20: its good box (0, 0, 10, 10) scales by (20/30, 16/30).
    assert dataset.boxes[1].shape == (1, 4)
    assert dataset.boxes[1][0].tolist() == pytest.approx([0, 0, 20 / 3, 16 / 3])


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


def test_c3vd_depth_0_and_65535_are_invalid(tmp_path):
    """0 and 65535 both become 0 (DurrLab/C3VD's loader sets both to NaN); the rest is linear."""
    raw = np.array([[0, 65535, 32768, 65534]], np.uint16)
    save(rgb(1, 4), tmp_path / "cecum_t1_a" / "0000_color.png")
    save(raw, tmp_path / "cecum_t1_a" / "0000_depth.tiff")
    depth = C3VD(tmp_path, (1, 4))[0]["depth"]
    assert depth[0, 0].tolist() == pytest.approx([0, 0, 32768 / 65535 * 100, 65534 / 65535 * 100])


C3VD_RELEASES = {  # video -> (folder of its frames, colour name, depth name) per release
    "v1-nested": lambda video, sub, n: (f"{video}_under_review/{sub}", f"{n}", f"{n}"),
    "v2-flat": lambda video, sub, n: (f"{video}_under_review", f"{n:04d}", f"{n:04d}"),
    "v3-current": lambda video, sub, n: (video, f"{n:04d}", f"{n:04d}"),
}


def write_c3vd(root, release: str, frames=(0, 1, 10)) -> None:
    """Three videos in ``release``'s layout; depth of frame n filled with 1000 * (n + 1)."""
    for video, sub in (("cecum_t1_a", "c1v1"), ("cecum_t2_c", "c2v3"), ("trans_t4_a", "t4v1")):
        for n in frames:
            folder, color, depth = C3VD_RELEASES[release](video, sub, n)
            save(rgb(20, 25), root / folder / f"{color}_color.png")
            depth_map = np.full((20, 25), 1000 * (n + 1), np.uint16)
            save(depth_map, root / folder / f"{depth}_depth.tiff")


@pytest.mark.parametrize("release", sorted(C3VD_RELEASES))
def test_c3vd_release_layouts_name_videos_one_way(tmp_path, release):
    write_c3vd(tmp_path / "C3VD", release)
    dataset = C3VD(tmp_path / "C3VD", SIZE)
    assert dataset.video_ids == ["cecum_t1_a"] * 3 + ["cecum_t2_c"] * 3 + ["trans_t4_a"] * 3
    assert [int(dataset[i]["depth"][0, 0, 0] / 100 * 65535 + 0.5) for i in (3, 4, 5)] == [
        1000, 2000, 11000,
    ]  # fmt: skip
    assert C3VD(tmp_path / "C3VD", SIZE, videos=["cecum_t2_c"]).video_ids == ["cecum_t2_c"] * 3
    data = DepthDataModule(
        str(tmp_path / "C3VD"), size=SIZE, batch_size=2, num_workers=0, split="groups",
        val_groups=["trans_t4_a"], test_groups=["cecum_t2_c"],
    )  # fmt: skip
    data.setup()
    assert [len(data.parts[part]) for part in ("train", "val", "test")] == [3, 3, 3]


def test_c3vd_pad_square_centres_the_frame(tmp_path):
    """SSL4GIE's make_square: a 4x6 frame goes on a 6x6 canvas one row down; padding depth 0."""
    image = RNG.integers(1, 256, (4, 6, 3), dtype=np.uint8)
    save(image, tmp_path / "v" / "0000_color.png")
    save(np.full((4, 6), 30000, np.uint16), tmp_path / "v" / "0000_depth.tiff")
    sample = C3VD(tmp_path, (6, 6), pad_square=True)[0]
    expected_image = np.zeros((6, 6, 3), np.uint8)
    expected_image[1:5] = image
    assert np.array_equal(sample["image"].permute(1, 2, 0).numpy(), expected_image)
    valid = sample["depth"][0] > 0
    assert valid.tolist() == [[False] * 6] + [[True] * 6] * 4 + [[False] * 6]
    squashed = C3VD(tmp_path, (6, 6))[0]["depth"]
    assert bool((squashed > 0).all())


def write_acdc_patient(folder, patient: str) -> None:
    volume = RNG.normal(300, 80, (8, 6, 2)).astype(np.float32)
    save_nifti(volume, folder / patient / f"{patient}_frame01.nii.gz")
    save_nifti(np.zeros((8, 6, 2), np.uint8), folder / patient / f"{patient}_frame01_gt.nii.gz")


def test_acdc_reads_training_only_unless_asked(tmp_path):
    database = tmp_path / "ACDC" / "database"
    write_acdc_patient(database / "training", "patient001")
    write_acdc_patient(database / "testing", "patient101")
    assert set(NiftiSlices(tmp_path / "ACDC", SIZE).case_ids) == {"patient001"}
    assert set(NiftiSlices(database / "training", SIZE).case_ids) == {"patient001"}
    both = NiftiSlices(tmp_path / "ACDC", SIZE, include_testing=True)
    assert both.case_ids == ["patient001"] * 2 + ["patient101"] * 2
    (database / "testing" / "patient101" / "patient101_frame01.nii.gz").unlink()
    (database / "testing" / "patient101" / "patient101_frame01_gt.nii.gz").unlink()
    (database / "testing" / "patient101").rmdir()
    (database / "testing").rmdir()
    with pytest.raises(InputError, match=r"include_testing: no .*testing beside"):
        NiftiSlices(database, SIZE, include_testing=True)


def one_line_error(match: str, build) -> str:
    with pytest.raises(InputError, match=match) as info:
        build()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_missing_or_empty_class_is_one_line_error(hyperkvasir_root):
    ileum = next(hyperkvasir_root.rglob("ileum"))
    for image in ileum.iterdir():
        image.unlink()  # an empty class folder
    message = one_line_error(
        "no images for class", lambda: HyperKvasirLabeled(hyperkvasir_root, SIZE, task="landmarks")
    )
    assert "class(es) ileum under" in message
    assert str(hyperkvasir_root / "labeled-images") in message
    ileum.rmdir()  # a missing class folder
    one_line_error("ileum", lambda: HyperKvasirLabeled(hyperkvasir_root, SIZE, task="all"))
    assert len(HyperKvasirLabeled(hyperkvasir_root, SIZE, task="findings")) == 12


def test_split_file_class_names_are_named_with_their_folders(hyperkvasir_root):
    for split_name, folder_name in (("polyp", "polyps"), ("normal-cecum", "cecum")):
        folder = next(hyperkvasir_root.rglob(folder_name))
        folder.rename(folder.with_name(split_name))
    message = one_line_error(
        "class", lambda: HyperKvasirLabeled(hyperkvasir_root, SIZE, task="all")
    )
    assert "class(es) cecum, polyps under" in message
    assert "normal-cecum -> cecum, polyp -> polyps" in message


def test_flat_imagenet_val_is_an_error(tmp_path):
    save(rgb(), tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    one_line_error(r"no class folders.*val", lambda: ImageNetFolder(tmp_path, "val", SIZE))


def test_a_missing_class_fails_through_the_datamodule(hyperkvasir_root):
    shutil.rmtree(next(hyperkvasir_root.rglob("ileum")))
    data = ClassificationDataModule(
        str(hyperkvasir_root), options={"task": "landmarks"}, size=SIZE, num_workers=0
    )
    with pytest.raises(InputError, match="ileum"):
        data.setup()


def write_hyperkvasir_tracts(root) -> None:
    """One image per class, in its real tract and category folder."""
    for tract, category, name in HYPERKVASIR_TREE:
        save(rgb(8, 8), root / "labeled-images" / tract / category / name / f"{name}.jpg")


def test_ssl4gie_class_order(tmp_path):
    """SSL4GIE's sorted(glob(".../*/")) order, worked out by hand: lower tract first, names
    compared with their trailing '/' ('-' < '/')."""
    write_hyperkvasir_tracts(tmp_path)
    landmarks = HyperKvasirLabeled(tmp_path, SIZE, task="landmarks", class_order="ssl4gie")
    assert landmarks.classes == [
        "cecum", "ileum", "retroflex-rectum", "pylorus", "retroflex-stomach", "z-line",
    ]  # fmt: skip
    findings = HyperKvasirLabeled(tmp_path, SIZE, task="findings", class_order="ssl4gie")
    grades = ("0-1", "1-2", "1", "2-3", "2", "3")
    assert findings.classes == [
        "hemorrhoids", "polyps", *(f"ulcerative-colitis-grade-{g}" for g in grades),
        "barretts-short-segment", "barretts", "esophagitis-a", "esophagitis-b-d",
    ]  # fmt: skip
    for dataset in (landmarks, findings):
        names = [dataset.classes[t] for t in dataset.targets]
        assert names == [path.parent.name for path in dataset.images]
    default = HyperKvasirLabeled(tmp_path, SIZE, task="landmarks")
    assert default.classes == hyperkvasir_classes("landmarks")
    with pytest.raises(InputError, match="class_order"):
        HyperKvasirLabeled(tmp_path, SIZE, task="landmarks", class_order="glob")


def write_seg_folder(root, masks: dict[str, np.ndarray], suffix=".jpg") -> None:
    for stem, mask in masks.items():
        image_stem = stem.replace("_mask", "_fram") if "fine" in stem else stem.replace("_mask", "")
        save(rgb(*mask.shape), root / "images" / f"{image_stem}.jpg")
        save(mask, root / "masks" / f"{stem}{suffix}")


def test_seg_folder_pairs_by_stem_without_known_suffixes(tmp_path):
    square = np.zeros((12, 16), np.uint8)
    square[2:6, 3:9] = 255
    stems = ["fine_3_10_mask", "fine_3_2_mask", "fine_3_1_mask", "a_mask", "b"]
    write_seg_folder(tmp_path, {stem: square for stem in stems})
    dataset = SegFolder(tmp_path, (12, 16))
    assert [p.name for p in dataset.images] == [
        "a.jpg", "b.jpg", "fine_3_1_fram.jpg", "fine_3_2_fram.jpg", "fine_3_10_fram.jpg",
    ]  # fmt: skip
    assert [p.name for p in dataset.masks][2:] == [
        "fine_3_1_mask.jpg", "fine_3_2_mask.jpg", "fine_3_10_mask.jpg",
    ]  # fmt: skip
    assert torch.equal(dataset[4]["mask"], torch.from_numpy(square >= 128).to(torch.uint8))
    assert dataset.groups is None and LAYOUTS_OF_DATAMODULE["seg-folder"] is SegFolder


def test_seg_folder_png_masks_and_errors(tmp_path):
    square = np.zeros((12, 16), np.uint8)
    square[2:6, 3:9] = 1
    write_seg_folder(tmp_path, {"a_mask": square}, suffix=".png")
    one_line_error(r"a_mask\.png has values 0\.\.1.*0/255", lambda: SegFolder(tmp_path, SIZE))
    save(square * 255, tmp_path / "masks" / "a_mask.png")
    assert SegFolder(tmp_path, SIZE)[0]["mask"].sum() > 0
    save(square * 255, tmp_path / "masks" / "a.png")
    one_line_error(r"pair with the same image", lambda: SegFolder(tmp_path, SIZE))
    one_line_error(r"expected .*images/", lambda: SegFolder(tmp_path / "images", SIZE))


@pytest.mark.parametrize("spelling", ["Ground_Truth", "GroundTruth"])
def test_cvc_clinicdb_ground_truth_spellings(cvc_root, spelling):
    folder = next(cvc_root.rglob("Ground Truth"))
    folder.rename(folder.with_name(spelling))
    dataset = CVCClinicDB(cvc_root, SIZE)
    assert len(dataset) == 4 and dataset.masks[0].parent.name == spelling


def test_full_masks_reach_the_batch_at_original_size(kvasir_seg_root):
    dataset = KvasirSEG(kvasir_seg_root, SIZE, full_masks=True)
    batch = collate_samples([dataset[0], dataset[1]])
    assert [tuple(mask.shape) for mask in batch["full_mask"]] == [(40, 60), (30, 30)]
    assert batch["mask"].shape == (2, *SIZE)
    assert int(batch["full_mask"][0].sum()) == 24 * 16  # the box (6, 4, 30, 20) is the polyp
    assert "full_mask" not in KvasirSEG(kvasir_seg_root, SIZE)[0]


def test_segmentation_metrics_at_the_original_mask_size():
    """Logits [+1, -1] upsampled bilinearly to 4 columns are [1, .5, -.5, -1]: 2 px predicted.
    Against the full mask [1, 1, 1, 0]: TP 2, FN 1, Dice 4/5; at the batch size the mask would
    be [1, 1] against the prediction [1, 0]: Dice 2/3."""
    task = SegmentationTask("resnet18", num_classes=2).eval()
    logits = torch.tensor([[[[1.0, -1.0]]]])
    batch = {"mask": torch.tensor([[[1, 1]]]), "full_mask": [torch.tensor([[1, 1, 1, 0]])]}
    task.update_metrics(task.val_metrics, logits, batch)
    assert float(task.val_metrics.compute()["val_dice"]) == pytest.approx(4 / 5)
    task.val_metrics.reset()
    task.update_metrics(task.val_metrics, logits, {"mask": batch["mask"]})
    assert float(task.val_metrics.compute()["val_dice"]) == pytest.approx(2 / 3)
