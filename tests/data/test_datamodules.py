"""Every DataModule through ``Trainer.fit`` on synthetic data in its real layout."""

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl4gie.data.datamodules import (
    ClassificationDataModule,
    DepthDataModule,
    DetectionDataModule,
    PretrainDataModule,
    SegmentationDataModule,
    Source,
    collate_samples,
)
from ssl4gie.data.synthetic.layouts import C3VD_VIDEOS
from ssl4gie.errors import InputError
from ssl4gie.transforms import TwoViews


class TinyModel(L.LightningModule):
    """A two-layer conv net whose loss uses every key a batch holds, so that a wrong dtype or
    shape from a DataModule fails the fit. Views are made on the device, as in real runs."""

    def __init__(self, views: nn.Module | None = None, num_classes: int = 23) -> None:
        super().__init__()
        self.views = views
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
        self.classify = nn.Linear(2, num_classes)
        self.seen: dict[str, int] = {}

    def on_after_batch_transfer(self, batch, dataloader_idx):
        if self.views is not None and self.trainer.training:
            batch["views"] = self.views(batch["image"])
        else:
            batch["views"] = [batch["image"].float() / 255]
        return batch

    def _loss(self, batch) -> torch.Tensor:
        assert batch["image"].dtype == torch.uint8
        for key in batch:
            self.seen[key] = self.seen.get(key, 0) + 1
        maps = [self.body(view) for view in batch["views"]]
        loss = sum(m.pow(2).mean() for m in maps)
        if "label" in batch:
            loss = loss + F.cross_entropy(self.classify(maps[0].mean((2, 3))), batch["label"])
        if "mask" in batch:
            target = (batch["mask"] > 0).float()
            loss = loss + F.binary_cross_entropy_with_logits(maps[0][:, 0], target)
        if "depth" in batch:
            loss = loss + F.mse_loss(maps[0][:, 1:], batch["depth"] / 100)
        if "boxes" in batch:
            assert all(b.ndim == 2 and b.shape[1] == 4 for b in batch["boxes"])
        return loss

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), batch_size=len(batch["image"]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def fit(datamodule, model=None) -> TinyModel:
    model = model or TinyModel()
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    assert trainer.state.finished
    return model


LOADER = {"batch_size": 4, "num_workers": 0}


def test_pretrain_concatenates_sources_and_probes(synthetic):
    unlabeled = Source("hyperkvasir-unlabeled", str(synthetic("hyperkvasir-unlabeled", n=12)))
    imagenet = Source("imagefolder", str(synthetic("imagefolder", n=8)), {"split": "train"})
    probe = Source("hyperkvasir-labeled", str(synthetic("hyperkvasir-labeled", n=46)))
    dm = PretrainDataModule([unlabeled, imagenet], size=32, probe=probe, **LOADER)
    model = fit(dm, TinyModel(views=TwoViews.byol(size=24)))
    dm.setup()
    assert len(dm.train_set) == 12 + len(dm.train_set.datasets[1])
    assert model.seen["views"] >= len(dm.train_set) // 4
    assert model.seen["label"] > 0  # the probe set reached the validation loop


def test_classification_label_fraction_is_stratified(synthetic):
    root = str(synthetic("hyperkvasir-labeled", n=120))
    full = ClassificationDataModule(root, options={"task": "landmarks"}, size=32, **LOADER)
    half = ClassificationDataModule(
        root, options={"task": "landmarks"}, size=32, label_fraction=0.5, **LOADER
    )
    fit(half)
    full.setup()
    assert full.num_classes == 6
    assert set(half.parts["train"].indices) <= set(full.parts["train"].indices)
    assert (half.class_counts() >= 1).all()
    assert torch.all(half.class_counts() <= full.class_counts())


def test_label_seed_draws_another_subset_of_the_same_split(synthetic):
    root = str(synthetic("hyperkvasir-labeled", n=120))

    def parts(**kwargs):
        dm = ClassificationDataModule(
            root, options={"task": "landmarks"}, size=32, label_fraction=0.3, **kwargs, **LOADER
        )
        dm.setup()
        return {name: set(part.indices) for name, part in dm.parts.items()}

    default, same, other = parts(), parts(label_seed=0), parts(label_seed=1)
    assert default == same
    assert other["val"] == default["val"] and other["test"] == default["test"]
    assert other["train"] != default["train"] and len(other["train"]) == len(default["train"])


@pytest.mark.parametrize(
    "make",
    [
        lambda s: SegmentationDataModule(str(s("kvasir-seg")), size=32, **LOADER),
        lambda s: SegmentationDataModule(
            str(s("cvc-clinicdb")), layout="cvc-clinicdb", split="leak-aware", size=32, **LOADER
        ),
        lambda s: DetectionDataModule(str(s("kvasir-seg")), size=32, **LOADER),
        lambda s: DepthDataModule(
            str(s("c3vd", n=24)),
            split="groups",
            val_groups=[C3VD_VIDEOS[4]],
            test_groups=[C3VD_VIDEOS[5]],
            size=32,
            **LOADER,
        ),
    ],
    ids=["kvasir-seg", "cvc-leak-aware", "detection", "c3vd-by-video"],
)
def test_task_datamodules_fit(synthetic, make):
    dm = make(synthetic)
    model = fit(dm)
    parts = {name: set(part.indices) for name, part in dm.parts.items()}
    assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
    assert sum(map(len, parts.values())) == len(dm.dataset)
    assert model.seen["image"] > 0


def test_c3vd_split_keeps_videos_apart(synthetic):
    dm = DepthDataModule(
        str(synthetic("c3vd", n=24)),
        split="groups",
        val_groups=[C3VD_VIDEOS[4]],
        test_groups=[C3VD_VIDEOS[5]],
        **LOADER,
    )
    dm.setup()
    videos = np.asarray(dm.dataset.video_ids)
    assert set(videos[dm.split.val]) == {C3VD_VIDEOS[4]}
    assert set(videos[dm.split.test]) == {C3VD_VIDEOS[5]}
    assert not {C3VD_VIDEOS[4], C3VD_VIDEOS[5]} & set(videos[dm.split.train])


def test_training_survives_bad_files(salted_folder):
    """Unreadable files are skipped at indexing; one corrupted after indexing is replaced."""
    root, bad = salted_folder
    dm = PretrainDataModule(Source("folder", str(root)), size=16, drop_last=False, **LOADER)
    dm.setup()
    indexed = {p.relative_to(root).as_posix() for p in dm.train_set.images}
    assert not indexed & bad
    (root / "good.jpg").write_bytes(b"\xff\xd8 broken after indexing")
    with pytest.warns(UserWarning, match="replaced an unreadable sample"):
        model = fit(dm)
    assert model.seen["image"] == -(-len(indexed) // 4)


def test_detection_batches_keep_boxes_per_image():
    samples = [
        {"image": torch.zeros(3, 8, 8, dtype=torch.uint8), "boxes": torch.zeros(k, 4)}
        for k in (0, 2)
    ]
    batch = collate_samples(samples)
    assert batch["image"].shape == (2, 3, 8, 8)
    assert [b.shape[0] for b in batch["boxes"]] == [0, 2]


def test_bad_arguments_fail_with_one_line(tmp_path):
    with pytest.raises(InputError, match=r"unknown dataset layout 'kvasir-sge'.*kvasir-seg"):
        SegmentationDataModule(str(tmp_path), layout="kvasir-sge")
    with pytest.raises(InputError, match="needs val_groups and test_groups"):
        DepthDataModule(str(tmp_path), split="groups")
    with pytest.raises(InputError, match=r"data root .*missing does not exist"):
        SegmentationDataModule(str(tmp_path / "missing"))
    with pytest.raises(InputError, match="Kvasir-SEG not found: expected"):
        SegmentationDataModule(str(tmp_path)).setup()  # exists, but not in the layout


def test_leak_aware_split_keeps_duplicates_together(synthetic, tmp_path):
    """Every image twice: the protocol's random split leaks pairs, the leak-aware one none."""
    import shutil

    root = tmp_path / "twice"
    shutil.copytree(synthetic("imagefolder", n=46), root)
    originals = sorted((root / "train").rglob("*.JPEG"))
    for image in originals:
        shutil.copy(image, image.with_name("copy_" + image.name))
    options = {"options": {"split": "train"}, "size": 32, **LOADER}
    protocol = ClassificationDataModule(str(root), layout="imagefolder", **options)
    report = protocol.leak_report()
    assert sum(n for row in report.pairs.values() for n in row.values()) >= len(originals)
    assert report.leaked["test"] > 0
    aware = ClassificationDataModule(str(root), layout="imagefolder", split="leak-aware", **options)
    aware.setup()
    names = [p.name.removeprefix("copy_") for p in aware.dataset.images]
    part_of = {}
    for part, indices in aware.split.to_dict().items():
        for i in indices:
            assert part_of.setdefault(names[i], part) == part


def test_decode_on_device_matches_worker_decoding(synthetic, tmp_path):
    """Bytes decoded in transfer_batch_to_device give the images the workers would decode."""
    import shutil

    root = tmp_path / "hk"
    shutil.copytree(synthetic("hyperkvasir-unlabeled", n=12), root)
    source = Source("hyperkvasir-unlabeled", str(root))
    on_device = PretrainDataModule(source, size=32, decode_on_device=True, **LOADER)
    in_workers = PretrainDataModule(source, size=32, **LOADER)
    for dm in (on_device, in_workers):
        dm.setup()
    cpu = torch.device("cpu")
    encoded = collate_samples([on_device.train_set[i] for i in range(4)], keys=("jpeg", "index"))
    decoded = on_device.transfer_batch_to_device(encoded, cpu, 0)
    expected = torch.stack([in_workers.train_set[i]["image"] for i in range(4)])
    assert torch.equal(decoded["image"], expected) and "jpeg" not in decoded
    on_device.train_set.paths[1].write_bytes(b"\xff\xd8\xff broken after indexing")
    broken = collate_samples([on_device.train_set[i] for i in range(4)], keys=("jpeg", "index"))
    with pytest.warns(UserWarning, match="replaced 1 undecodable JPEG"):
        batch = on_device.transfer_batch_to_device(broken, cpu, 0)
    assert batch["image"].shape == (4, 3, 32, 32)
    fit(on_device, TinyModel(views=TwoViews.byol(size=24)))


def test_decode_on_device_needs_jpegs(salted_folder):
    root, _ = salted_folder
    dm = PretrainDataModule(Source("folder", str(root)), decode_on_device=True, **LOADER)
    with pytest.raises(InputError, match="decode_on_device needs JPEG files"):
        dm.setup()


def test_multiclass_nifti_segmentation_fits(acdc_root):
    dm = SegmentationDataModule(
        str(acdc_root), layout="acdc", split="leak-aware", size=32, **LOADER
    )
    model = fit(dm)
    assert model.seen["mask"] > 0
    patients = np.asarray(dm.dataset.case_ids)
    assert not set(patients[dm.split.train]) & set(patients[dm.split.test])  # by patient
