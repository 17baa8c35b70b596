"""Streaming shards (ssl4gie.data.streaming): written to a local folder and to a real S3 API
server (moto's standalone server, a subprocess on 127.0.0.1, never a mock of the client), read
by one process and by a 2-process gloo DDP run, resumed mid-epoch from a Lightning checkpoint.

Over the server's plain HTTP, litdata 0.2.76 must use boto3 instead of obstore (see the module
docstring of ssl4gie.data.streaming); these tests exercise that switch, so they pin the litdata
behaviour of that version.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import lightning as L
import pytest
import torch

from ssl4gie import _io
from ssl4gie.cli import main
from ssl4gie.data import streaming
from ssl4gie.data.datamodules import AspectTrueFrames, PretrainDataModule, Source, open_dataset
from ssl4gie.errors import InputError
from tests.data.conftest import jpeg_bytes, rgb, save
from tests.ddp import run_distributed

pytest.importorskip("litdata")
N_FRAMES = 16


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 for the session, with the AWS variables pointing at it."""
    pytest.importorskip("moto.server")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("moto's S3 server did not start")
            time.sleep(0.1)
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield env["AWS_ENDPOINT_URL"]
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def bucket(s3_server) -> str:
    """A new empty bucket on the server."""
    import boto3

    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def frames(tmp_path) -> Path:
    """``N_FRAMES`` small JPEGs of a few sizes (one PNG named .png) in a folder."""
    root = tmp_path / "frames"
    for i in range(N_FRAMES - 1):
        save(rgb(24 + i % 3 * 8, 32), root / f"f{i:02d}.jpg", quality=90)
    save(rgb(20, 20), root / "z.png")
    return root


def _optimize(root: Path, out: str, **options):
    reader = open_dataset(Source("folder", str(root)), None)
    options = {"shard_size": "2kb", "progress": False, **options}
    return reader, streaming.optimize_shards(reader, out, **options)


def test_shards_keep_the_file_bytes_and_metadata(frames, tmp_path):
    reader, summary = _optimize(frames, str(tmp_path / "shards"))
    assert (summary.samples, summary.bad_files) == (N_FRAMES, [])
    assert summary.shards > 1 and summary.bytes > sum(p.stat().st_size for p in reader.images)
    from litdata import StreamingDataset

    records = {r["index"]: r for r in StreamingDataset(str(tmp_path / "shards"))}
    assert sorted(records) == list(range(N_FRAMES))
    for i, path in enumerate(reader.images):
        assert bytes(records[i]["data"]) == path.read_bytes()  # never re-encoded
        meta = json.loads(records[i]["meta"])
        assert meta == {"source": str(path), "group": "", "label": -1}
    marker = json.loads((tmp_path / "shards" / streaming.MARKER).read_text())
    assert (marker["version"], marker["samples"], marker["jpeg_only"]) == (1, N_FRAMES, False)


def test_streaming_samples_match_the_folder_reader(frames, tmp_path):
    _optimize(frames, str(tmp_path / "shards"))
    folder = Source("folder", str(frames))
    squashed, aspect_true = (
        open_dataset(folder, 16),
        AspectTrueFrames(open_dataset(folder, None), 24),
    )
    fixed = streaming.open_streaming(str(tmp_path / "shards"), size=16)
    fitted = streaming.open_streaming(str(tmp_path / "shards"), max_size=24)
    for sample in fixed:
        assert torch.equal(sample["image"], squashed[int(sample["index"])]["image"])
    for sample in fitted:
        expected = aspect_true[int(sample["index"])]
        assert torch.equal(sample["image"], expected["image"])
        assert torch.equal(sample["region"], expected["region"])
    encoded = streaming.FrameDecoder(encoded=True)
    record = {"data": memoryview(b"\xff\xd8\xff\x00"), "index": 3}
    assert encoded(record)["jpeg"].tolist() == [255, 216, 255, 0]


def test_a_file_broken_after_indexing_is_skipped_and_listed(frames, tmp_path):
    reader = open_dataset(Source("folder", str(frames)), None)
    broken = reader.images[3]
    broken.write_bytes(jpeg_bytes(rgb(64, 64))[:300])
    summary = streaming.optimize_shards(reader, str(tmp_path / "shards"), "2kb", progress=False)
    assert summary.samples == N_FRAMES - 1
    assert [line.split("\t")[0] for line in summary.bad_files] == [str(broken)]
    assert f"skipped 1 unreadable: {broken}" in str(summary)


def test_incomplete_or_foreign_sets_are_refused(frames, tmp_path):
    out = tmp_path / "shards"
    _optimize(frames, str(out))
    with pytest.raises(InputError, match="already holds a complete shard set"):
        _optimize(frames, str(out))
    marker = json.loads((out / streaming.MARKER).read_text())
    (out / streaming.MARKER).write_text(json.dumps({**marker, "version": 99, "ssl4gie": "9.0"}))
    with pytest.raises(InputError, match=r"shard format version 99 \(written by ssl4gie 9.0\)"):
        streaming.open_streaming(str(out))
    (out / streaming.MARKER).unlink()  # as if the writer was killed before its last step
    with pytest.raises(InputError, match=r"no complete ssl4gie shard set .* resumes"):
        PretrainDataModule(Source("streaming", str(out)), max_size=32)


class _Slow:
    """A reader giving one frame every 0.3 s, so that a kill lands mid-way."""

    def __init__(self, reader) -> None:
        self.reader, self.images = reader, reader.images

    def __len__(self) -> int:
        return len(self.reader)

    def encoded(self, i: int) -> bytes:
        time.sleep(0.3)
        return self.images[i].read_bytes()


def test_a_killed_write_is_never_complete_and_resumes(frames, tmp_path):
    out = tmp_path / "shards"
    reader = open_dataset(Source("folder", str(frames)), None)
    writer = os.fork()
    if writer == 0:  # the writer, in its own process group with its litdata workers
        os.setsid()
        try:
            streaming.optimize_shards(_Slow(reader), str(out), "2kb", progress=False)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 60
    while not (out / "chunk-0-3.bin").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(writer, signal.SIGKILL)
    os.waitpid(writer, 0)
    assert (out / "chunk-0-3.bin").exists() and not (out / "index.json").exists()
    with pytest.raises(InputError, match="no complete"):
        streaming.check_uri(str(out))
    summary = streaming.optimize_shards(reader, str(out), "2kb", progress=False)
    indices = sorted(int(s["index"]) for s in streaming.open_streaming(str(out), size=8))
    assert summary.samples == N_FRAMES and indices == list(range(N_FRAMES))


def test_a_local_destination_without_room_is_refused(frames, tmp_path, monkeypatch):
    free = shutil.disk_usage(tmp_path)._replace(free=1000)
    monkeypatch.setattr(_io.shutil, "disk_usage", lambda path: free)
    with pytest.raises(InputError, match=r"--out .* would write about .* has 1000 B free"):
        _optimize(frames, str(tmp_path / "shards"))
    assert not (tmp_path / "shards").exists()


def test_cli_optimize_writes_and_summarises(frames, tmp_path, capsys):
    out = tmp_path / "shards"
    args = ["data", "optimize", "--layout", "folder", "--root", str(frames), "--out", str(out)]
    assert main([*args, "--workers", "1", "--quiet", "--shard-size", "4kb"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {N_FRAMES} samples in" in printed and str(out) in printed
    assert main([*args, "--quiet"]) == 2
    assert "already holds a complete shard set" in capsys.readouterr().err


# ---------------------------------------------------------------- the S3 server


@pytest.mark.slow
def test_s3_shards_are_read_once_per_epoch_by_a_ddp_run(frames, bucket, monkeypatch):
    uri = f"s3://{bucket}/frames"
    monkeypatch.setenv("SSL4GIE_TEST_URI", uri)  # the spawned ranks inherit the environment
    _, summary = _optimize(frames, uri)
    assert summary.samples == N_FRAMES
    seen = run_distributed(_ddp_epoch_indices)
    assert len(seen[0]) == len(seen[1]) == N_FRAMES // 2
    assert sorted(seen[0] + seen[1]) == list(range(N_FRAMES))


def _ddp_epoch_indices(rank: int, world_size: int) -> list[int]:
    source = Source("streaming", os.environ["SSL4GIE_TEST_URI"])
    data = PretrainDataModule(source, max_size=32, batch_size=2, num_workers=0)
    data.setup()
    return [int(i) for batch in data.train_dataloader() for i in batch["index"]]


@pytest.mark.slow
def test_s3_failures_are_one_line_within_seconds(frames, bucket, monkeypatch):
    uri = f"s3://{bucket}/frames"
    cases = [
        (f"s3://no-such-{bucket}/x", {}, "the bucket does not exist"),
        (uri, {}, r"no complete ssl4gie shard set"),
        (uri, {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}"}, "AWS_ENDPOINT_URL"),
    ]
    for target, env, expected in cases:
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            start = time.monotonic()
            with pytest.raises(InputError, match=expected) as info:
                PretrainDataModule(Source("streaming", target), max_size=32)
            assert time.monotonic() - start < 10
            assert target in str(info.value) and "\n" not in str(info.value)
    with monkeypatch.context() as patch:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.delenv(name)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(frames / "none"))
        patch.setenv("AWS_CONFIG_FILE", str(frames / "none"))
        with pytest.raises(InputError, match=r"no credentials found; set AWS_ACCESS_KEY_ID"):
            streaming.check_uri(uri)


class _Recorder(L.LightningModule):
    """Records the sample indices of every training batch; stops the run at ``kill_at``."""

    def __init__(self, kill_at: int | None = None) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.kill_at, self.seen = kill_at, []

    def training_step(self, batch, batch_idx):
        if batch_idx == self.kill_at:
            raise _Killed
        self.seen.append(batch["index"].tolist())
        return (self.weight * batch["image"].float().mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Killed(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_a_killed_run_resumes_mid_epoch_without_repeats_or_gaps(frames, tmp_path, workers):
    out = str(tmp_path / "shards")
    _optimize(frames, out)
    checkpoints = L.pytorch.callbacks.ModelCheckpoint(
        tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1, save_last=True
    )

    def run(module, callbacks=(), ckpt_path=None):
        data = PretrainDataModule(
            Source("streaming", out), size=8, batch_size=2, num_workers=workers
        )
        trainer = L.Trainer(
            max_epochs=1,
            callbacks=list(callbacks),
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp_path,
        )
        trainer.fit(module, data, ckpt_path=ckpt_path)

    first = _Recorder(kill_at=5)
    with pytest.raises(_Killed):
        run(first, [checkpoints])
    resumed = _Recorder()
    run(resumed, ckpt_path=str(tmp_path / "ckpt" / "epoch=0-step=4.ckpt"))
    before = [i for batch in first.seen[:4] for i in batch]  # the 4 steps the checkpoint holds
    after = [i for batch in resumed.seen for i in batch]
    assert sorted(before + after) == list(range(N_FRAMES))


def test_video_frames_are_stored_as_jpegs_grouped_by_video(tmp_path, capsys):
    pytest.importorskip("av")
    from tests.data.test_video import counting, read_code

    counting(tmp_path / "videos" / "a.mp4", seconds=3)
    counting(tmp_path / "videos" / "b.mp4", seconds=2)
    out = tmp_path / "shards"
    args = ["--layout", "video", "--root", str(tmp_path / "videos"), "--out", str(out)]
    assert main(["data", "optimize", *args, "--workers", "1", "--quiet"]) == 0
    reader = open_dataset(Source("video", str(tmp_path / "videos")), None)
    from litdata import StreamingDataset

    records = sorted(StreamingDataset(str(out)), key=lambda record: record["index"])
    assert len(records) == len(reader) == 5  # 1 frame per second
    for i, record in enumerate(records):
        meta = json.loads(record["meta"])
        assert meta["group"] == reader.groups[i] and meta["source"].endswith(f".mp4#{i}")
        assert bytes(record["data"][:3]) == b"\xff\xd8\xff"
        assert read_code(streaming.decode_bytes(record["data"])) == read_code(reader[i]["image"])
    assert [json.loads(r["meta"])["group"] for r in records] == ["a.mp4"] * 3 + ["b.mp4"] * 2
    assert json.loads((out / streaming.MARKER).read_text())["jpeg_only"]


def test_decode_on_device_gets_jpeg_bytes_of_a_jpeg_only_set(frames, tmp_path):
    with_png, jpegs = str(tmp_path / "with-png"), str(tmp_path / "jpegs")
    _optimize(frames, with_png)
    with pytest.raises(InputError, match="decode_on_device needs a shard set of JPEG frames"):
        PretrainDataModule(Source("streaming", with_png), decode_on_device=True).setup()
    (frames / "z.png").unlink()
    _optimize(frames, jpegs)
    data = PretrainDataModule(
        Source("streaming", jpegs), max_size=24, batch_size=5, num_workers=0, decode_on_device=True
    )
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"jpeg", "index"}
    batch = data.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    expected = AspectTrueFrames(open_dataset(Source("folder", str(frames)), None), 24)
    for image, region, i in zip(batch["image"], batch["region"], batch["index"], strict=True):
        assert torch.equal(region, expected[int(i)]["region"])
        assert (image.int() - expected[int(i)]["image"].int()).abs().max() <= 1
