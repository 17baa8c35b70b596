"""The ``video`` layout on videos written in the test with PyAV: every frame shows its number as
an 8-bit bar code, so each test checks which frame came back."""

from __future__ import annotations

import re
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl4gie.cli import main as cli_main
from ssl4gie.data import video as video_module
from ssl4gie.data.datamodules import PretrainDataModule, Source, TaskDataModule, open_dataset
from ssl4gie.data.video import VideoFrames, build_video_index, sample_pts
from ssl4gie.errors import InputError

av = pytest.importorskip("av")  # the video extra (PyAV), in the dev install
HEIGHT, WIDTH, RATE = 48, 64, 25
BITS = 8  # vertical stripes of WIDTH // BITS px, most significant first


def bar_code(number: int) -> np.ndarray:
    """uint8 ``[H, W, 3]``: stripe b white where bit b of ``number`` is set, else black."""
    bits = [(number >> (BITS - 1 - b)) & 1 for b in range(BITS)]
    row = np.repeat(np.array(bits, np.uint8) * 255, WIDTH // BITS)
    return np.broadcast_to(row[None, :, None], (HEIGHT, WIDTH, 3)).copy()


def read_code(image: torch.Tensor) -> int:
    """The number a decoded bar-code frame (uint8 ``[3, H, W]``) shows: each stripe's centre."""
    stripe = WIDTH // BITS
    centres = image.float().mean(dim=(0, 1))[stripe // 2 :: stripe]
    return int("".join("1" if value > 128 else "0" for value in centres), 2)


def texture(seed: int) -> np.ndarray:
    """A smooth random colour picture (one scene)."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(coarse, HEIGHT // 6, axis=0), WIDTH // 8, axis=1)


def write_video(path: Path, pictures, codec: str = "libx264", **options: str) -> Path:
    """Encode ``pictures`` (uint8 ``[H, W, 3]`` arrays) at 25 fps; ``options`` go to the
    encoder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=RATE, options=options)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for picture in pictures:
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def counting(path: Path, seconds: float = 10, codec: str = "libx264", **options: str) -> Path:
    """A video whose frame i shows i, ``seconds`` long at 25 fps."""
    return write_video(path, (bar_code(i) for i in range(round(seconds * RATE))), codec, **options)


def codes(frames: VideoFrames, order=None) -> list[int]:
    order = range(len(frames)) if order is None else order
    return [read_code(frames[i]["image"]) for i in order]


def test_bar_codes_survive_encoding(tmp_path):
    """The helper itself: every frame of a counting video decodes to its own number."""
    path = counting(tmp_path / "clip.mp4", seconds=2)
    with av.open(str(path)) as container:
        found = [read_code(torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1))
                 for f in container.decode(video=0)]  # fmt: skip
    assert found == list(range(50))


def test_one_fps_gives_ten_frames_of_one_video(tmp_path):
    """A 10 s video at 25 fps sampled at 1 fps: frames 0, 25, ..., 225, at 0..9 s, one group."""
    counting(tmp_path / "videos" / "clip.mp4")
    frames = VideoFrames(tmp_path / "videos", size=None, cache_dir=tmp_path / "cache")
    assert codes(frames) == list(range(0, 250, 25))
    assert frames.times == pytest.approx(list(range(10)))
    assert frames.groups == ["clip.mp4"] * 10
    assert frames[0]["image"].shape == (3, HEIGHT, WIDTH)
    assert frames[3]["index"] == 3


def test_every_nth_frame_read_in_any_order(tmp_path):
    """``every=7`` in an MKV: frames 0, 7, 14, ...; reading backwards seeks to the same frames."""
    counting(tmp_path / "clip.mkv")
    frames = VideoFrames(tmp_path, size=None, every=7, cache_dir=tmp_path / "cache")
    expected = list(range(0, 250, 7))
    assert codes(frames) == expected
    assert codes(frames, reversed(range(len(frames)))) == expected[::-1]


def test_frames_in_order_decode_on_without_seeking(tmp_path, monkeypatch):
    """One keyframe (x264's default interval, 250, covers the 10 s; no keyframes at scene cuts):
    reading the 1 fps frames in order seeks once and decodes on; backwards, every read seeks to
    the keyframe."""
    counting(tmp_path / "clip.mp4", sc_threshold="0")
    frames = VideoFrames(tmp_path, size=None, cache_dir=tmp_path / "cache")
    assert set(frames.keys) == {frames.pts[0]}
    seeks = []
    real_seek = video_module.OpenVideo._seek
    monkeypatch.setattr(video_module.OpenVideo, "_seek", lambda self, pts: (
        seeks.append(pts), real_seek(self, pts))[1])  # fmt: skip
    assert codes(frames) == list(range(0, 250, 25))
    assert seeks == [frames.pts[0]]
    frames._close(tmp_path / "clip.mp4")
    assert codes(frames, reversed(range(10))) == list(range(225, -1, -25))
    assert len(seeks) == 1 + 10


def test_keyframes_before_by_hand():
    """The keyframe at or before each frame; a frame before every keyframe starts at the first
    frame."""
    keys = video_module.keyframes_before([5, 10, 11, 30, 2], [3, 10, 20], first=0)
    assert keys == [3, 10, 10, 20, 0]


def test_fps_sampling_by_hand():
    """2 fps on frames 40 ms apart (pts in ms, from 80): the first frame at or after 0, 0.5, 1,
    1.5 and 2 s, i.e. 0, 0.52, 1, 1.52 and 2 s after the first frame."""
    pts = list(range(80, 80 + 40 * 60, 40))  # 60 frames: 0 .. 2.36 s after the first
    assert sample_pts(pts, Fraction(1, 1000), fps=2.0, every=None) == [80, 600, 1080, 1600, 2080]
    assert sample_pts(pts, Fraction(1, 1000), fps=None, every=25) == [80, 1080, 2080]


def test_near_duplicates_dropped_on_static_segments(tmp_path):
    """Five static scenes of 2 s each: 1 fps gives 10 frames, dropping near-duplicates keeps the
    first of each scene (0, 2, 4, 6, 8 s)."""
    scenes = [texture(seed) for seed in range(5)]
    write_video(tmp_path / "v" / "scenes.mp4", (scenes[i // 50] for i in range(250)))
    every_second = VideoFrames(tmp_path / "v", size=None, cache_dir=tmp_path / "cache")
    distinct = VideoFrames(
        tmp_path / "v", size=None, drop_near_duplicates=True, cache_dir=tmp_path / "cache"
    )
    assert len(every_second) == 10
    assert distinct.times == pytest.approx([0, 2, 4, 6, 8])
    for i, scene in enumerate(scenes):  # each kept frame is its scene (lossy: within 8 levels)
        difference = distinct[i]["image"].permute(1, 2, 0).int() - torch.from_numpy(scene).int()
        assert difference.abs().float().mean() < 8


def bad_videos(root: Path) -> dict[str, str]:
    """Bad files beside good ones: a truncated MP4 (its index at the end lost), a truncated MKV
    (packets end early), a text file named .mp4, an AVI whose codec tag FFmpeg does not know,
    an MP4 with sound only. Returns their names and a word their reason must contain."""
    good = counting(root / "good.mp4", seconds=3).read_bytes()
    (root / "cut.mp4").write_bytes(good[: len(good) * 6 // 10])
    mkv = counting(root / "sub" / "full.mkv", seconds=10).read_bytes()
    (root / "sub" / "full.mkv").unlink()
    (root / "sub" / "cut.mkv").write_bytes(mkv[: len(mkv) * 6 // 10])
    (root / "notes.mp4").write_text("not a video at all")
    avi = counting(root / "tmp.avi", seconds=2, codec="mpeg4").read_bytes()
    (root / "tmp.avi").unlink()
    (root / "odd.avi").write_bytes(avi.replace(b"FMP4", b"QQQQ"))
    with av.open(str(root / "sound.mp4"), "w") as container:
        stream = container.add_stream("aac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
        frame.sample_rate = 8000
        container.mux([*stream.encode(frame), *stream.encode()])
    return {"cut.mp4": "Invalid data", "sub/cut.mkv": "truncated", "notes.mp4": "Invalid data",
            "odd.avi": "codec QQQQ has no decoder", "sound.mp4": "no video stream"}  # fmt: skip


def test_bad_videos_listed_and_skipped(tmp_path):
    expected = bad_videos(tmp_path / "v")
    with pytest.warns(UserWarning, match=r"skipped 5 unreadable video\(s\)") as caught:
        frames = VideoFrames(tmp_path / "v", size=None, cache_dir=tmp_path / "cache")
    assert len([w for w in caught if "unreadable video" in str(w.message)]) == 1
    assert codes(frames) == [0, 25, 50]
    assert frames.groups == ["good.mp4"] * 3
    listed = dict(line.split("\t") for line in frames.index.bad_list_path.read_text().splitlines())
    assert listed.keys() == expected.keys()
    for name, word in expected.items():
        assert word in listed[name], (name, listed[name])
    assert re.search(r"truncated: its frames end at \d\.\d s of 10\.0 s", listed["sub/cut.mkv"])


def with_sound(path: Path, video_seconds: int, sound_seconds: int) -> Path:
    """An MKV: a counting video and a silent AAC track of their own lengths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        sound = container.add_stream("aac", rate=8000, layout="mono")
        for i in range(video_seconds * RATE):
            container.mux(video.encode(av.VideoFrame.from_ndarray(bar_code(i), format="rgb24")))
        for k in range(sound_seconds * 8000 // 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
            frame.sample_rate, frame.pts = 8000, k * 1024
            container.mux(sound.encode(frame))
        container.mux([*video.encode(), *sound.encode()])
    return path


def test_sound_longer_than_the_video_is_no_truncation(tmp_path):
    """An MKV states its duration for all streams: 3 s of video under 6 s of sound reads (3
    frames); the same file cut at 60 % is truncated (both tracks end early)."""
    whole = with_sound(tmp_path / "v" / "long.mkv", video_seconds=3, sound_seconds=6)
    cut = whole.read_bytes()
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "cut.mkv").write_bytes(cut[: len(cut) * 6 // 10])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        index = build_video_index(tmp_path / "v", cache_dir=tmp_path / "c", progress=False)
    assert [len(video.pts) for video in index.videos] == [3]
    with pytest.warns(UserWarning, match=r"cut\.mkv \(truncated: its frames end at"):
        build_video_index(tmp_path / "w", cache_dir=tmp_path / "c", progress=False)


def test_video_broken_after_indexing_is_replaced(tmp_path):
    """Frames of a video overwritten after indexing are replaced by the next readable frame,
    with a warning naming the file, as in every reader."""
    counting(tmp_path / "v" / "a.mp4", seconds=2)
    counting(tmp_path / "v" / "b.mp4", seconds=2)
    frames = VideoFrames(tmp_path / "v", size=None, cache_dir=tmp_path / "cache")
    (tmp_path / "v" / "a.mp4").write_bytes(b"broken after indexing")
    with pytest.warns(UserWarning, match=r"replaced an unreadable sample \(cannot decode .*a\.mp4"):
        sample = frames[0]
    assert sample["index"] == 2 and read_code(sample["image"]) == 0  # b.mp4's first frame
    assert frames.replaced == 2


def test_index_is_cached_until_a_video_changes(tmp_path, monkeypatch):
    """A repeat build probes nothing; a rewritten video is probed again."""
    counting(tmp_path / "v" / "a.mp4", seconds=3)
    counting(tmp_path / "v" / "b.mp4", seconds=2)
    first = build_video_index(tmp_path / "v", cache_dir=tmp_path / "cache", progress=False)
    probed = []
    real_probe = video_module.probe_video
    monkeypatch.setattr(video_module, "probe_video", lambda path, *a: probed.append(path.name))
    again = build_video_index(tmp_path / "v", cache_dir=tmp_path / "cache", progress=False)
    assert again.videos == first.videos and probed == []
    counting(tmp_path / "v" / "b.mp4", seconds=4)
    monkeypatch.setattr(video_module, "probe_video", lambda path, *a: (
        probed.append(path.name), real_probe(path, *a))[1])  # fmt: skip
    changed = build_video_index(tmp_path / "v", cache_dir=tmp_path / "cache", progress=False)
    assert probed == ["b.mp4"]
    assert [len(video.pts) for video in changed.videos] == [3, 4]


def test_mixed_containers(tmp_path):
    """MP4, MKV and MOV (H.264) and AVI (MPEG-4 part 2), nested: 3 frames each at 1 fps, each
    its own group, every frame the one sampled."""
    for name, codec in [("a.mp4", "libx264"), ("b/c.mkv", "libx264"), ("b/d.MOV", "libx264"),
                        ("e.avi", "mpeg4")]:  # fmt: skip
        counting(tmp_path / "v" / name, seconds=3, codec=codec)
    frames = VideoFrames(tmp_path / "v", size=(24, 32), cache_dir=tmp_path / "cache")
    assert [video.name for video in frames.index.videos] == ["a.mp4", "b/c.mkv", "b/d.MOV", "e.avi"]
    assert [video.codec for video in frames.index.videos] == ["h264"] * 3 + ["mpeg4"]
    assert frames.groups == [name for name in frames.groups[::3] for _ in range(3)]
    assert len(set(frames.groups)) == 4
    assert frames[0]["image"].shape == (3, 24, 32)
    full = VideoFrames(tmp_path / "v", size=None, cache_dir=tmp_path / "cache")
    assert codes(full) == [0, 25, 50] * 4


def test_sampling_options_checked(tmp_path):
    counting(tmp_path / "clip.mp4", seconds=1)
    with pytest.raises(InputError, match="not both"):
        VideoFrames(tmp_path, size=None, fps=2.0, every=3)
    with pytest.raises(InputError, match="every must be a positive"):
        VideoFrames(tmp_path, size=None, every=0)
    with pytest.raises(InputError, match="fps must be a positive"):
        VideoFrames(tmp_path, size=None, fps=-1.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no readable video"):
        VideoFrames(tmp_path / "empty", None)


def test_pretraining_reads_aspect_true_video_frames(tmp_path):
    """PretrainDataModule on the layout: 64x48 frames fitted on a 32 px canvas (32x24 region)."""
    counting(tmp_path / "v" / "clip.mp4", seconds=4)
    data = PretrainDataModule(
        Source("video", str(tmp_path / "v"), {"cache_dir": str(tmp_path / "c")}),
        max_size=32,
        batch_size=4,
        num_workers=0,
    )
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert batch["region"].tolist() == [[0.0, 0.0, 32.0, 24.0]] * 4
    assert sorted(batch["index"].tolist()) == [0, 1, 2, 3]


def test_reader_in_a_worker_process(tmp_path):
    """A loader worker (fork or spawn) reopens the videos the parent had open."""
    counting(tmp_path / "clip.mp4", seconds=3)
    frames = open_dataset(Source("video", str(tmp_path), {"cache_dir": str(tmp_path / "c")}), None)
    assert read_code(frames[2]["image"]) == 50  # the parent opens the video first
    loader = torch.utils.data.DataLoader(frames, batch_size=None, num_workers=1)
    assert [read_code(sample["image"]) for sample in loader] == [0, 25, 50]


def test_cli_index_lists_videos(tmp_path, capsys):
    counting(tmp_path / "v" / "clip.mp4", seconds=3)
    bad_videos_root = tmp_path / "v"
    (bad_videos_root / "notes.mp4").write_text("not a video")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli_main(["data", "index", str(tmp_path / "v"), "--every", "25", "--quiet",
                         "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"clip\.mp4: 3 frames \(h264 64x48, 3\.0 s\)", out)
    assert "3 frames (1 frame in 25) from 1 video(s)" in out
    assert "1 unreadable video(s) skipped" in out


def test_without_pyav_only_videos_need_it(tmp_path, monkeypatch):
    """PyAV is the optional ``video`` extra: an image folder indexes without it; a video names
    the extra to install."""
    counting(tmp_path / "v" / "clip.mp4", seconds=1)
    (tmp_path / "images").mkdir()
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    assert build_video_index(tmp_path / "images", cache_dir=tmp_path / "c").videos == []
    with pytest.raises(InputError, match=r"pip install 'ssl4gie\[video\]'"):
        VideoFrames(tmp_path / "v", size=None, cache_dir=tmp_path / "c")


@pytest.mark.parametrize("split", ["leak-aware", "groups"])
def test_splits_keep_each_video_in_one_part(tmp_path, split):
    """Four videos of 3 distinct scenes each (1 s per scene: no frame is a near-duplicate of
    another), split 2/1/1 videos: each video lands whole in one part, by its group (leak-aware)
    or by name (groups)."""
    for k, name in enumerate("abcd"):
        scenes = [texture(10 * k + second) for second in range(3)]
        write_video(tmp_path / "v" / f"{name}.mp4", (scenes[i // RATE] for i in range(3 * RATE)))
    named = {"val_groups": ["b.mp4"], "test_groups": ["d.mp4"]} if split == "groups" else {}
    data = TaskDataModule(
        str(tmp_path / "v"), layout="video", size=32, num_workers=0, split=split,
        fractions=(0.5, 0.25, 0.25), options={"cache_dir": str(tmp_path / "c")}, **named,
    )  # fmt: skip
    data.setup()
    videos = {
        part: {data.dataset.groups[i] for i in data.parts[part].indices} for part in data.parts
    }
    assert sum(len(data.parts[part]) for part in data.parts) == 12
    assert not (videos["train"] & videos["val"] or videos["train"] & videos["test"])
    assert not videos["val"] & videos["test"]
    assert [len(videos[part]) for part in ("train", "val", "test")] == [2, 1, 1]
    if split == "groups":
        assert videos == {"train": {"a.mp4", "c.mp4"}, "val": {"b.mp4"}, "test": {"d.mp4"}}


def test_cli_index_refuses_fps_with_every(tmp_path, capsys):
    """Exit 2 with one line, before any folder is indexed."""
    argv = ["data", "index", str(tmp_path / "absent"), "--fps", "2", "--every", "3"]
    assert cli_main(argv) == 2
    assert capsys.readouterr().err.strip().endswith("give fps (2.0) or every (3), not both: they "
                                                    "sample frames alike")  # fmt: skip
