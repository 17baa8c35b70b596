"""Video decoding with PyAV, frames/s per core: the ``video`` layout's seek-and-decode reads
beside a plain sequential decode and JPEG files of the same frames.

    python benchmarks/video_decode.py [--gpu] [--seconds 60] [--steps 3] [--json out]

The video: ``--seconds`` (60) of a synthetic endoscopy frame (5:4, the scale's frame height:
360x288 on CPU, 720x576 with ``--gpu``) under a slow camera pan with sensor noise, H.264 (libx264,
yuv420p) at 25 fps in MP4, once with x264's default keyframe interval (250 frames, 10 s) and once
with a keyframe every second (25). Readings, one process, one decoder thread and one torch
thread: ``sequential`` decodes every frame in order to RGB; ``layout 1 fps`` reads the
``video`` layout's frames (1 per second, ``size=None`` as pretraining reads them) in order, and
``shuffled`` in a random order as the training loader does (a read decodes on from the last
frame read when no keyframe lies between them, else it seeks to the keyframe before the frame
and decodes up to it); ``jpeg folder`` reads the same frames saved as JPEGs (quality 95) as
the ``folder`` layout does (``read_image``). ``decoded/frame`` is the mean number of frames
decoded per frame returned (from the keyframe positions); ``x jpeg`` compares with the JPEG
reads. The index column is the time to index the video (demux only, no cache), in
seconds per minute of video. Median seconds of ``--steps`` (3) passes after one warm-up pass,
passes interleaved, at either scale.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import replace
from pathlib import Path

import _common
import av
import numpy as np
import torch
from PIL import Image

from ssl4gie.data.decode import read_image
from ssl4gie.data.index import build_index
from ssl4gie.data.synthetic.render import render_frame
from ssl4gie.data.video import VideoFrames, build_video_index

COLUMNS: list[_common.Column] = [
    ("keyint", "keyframe every", "{}"),
    ("reading", "reading", "{}"),
    ("frames", "frames", "{}"),
    ("frames_per_s", "frames/s/core", "{:.1f}"),
    ("decoded_per_frame", "decoded/frame", "{:.1f}"),
    ("vs_jpeg", "x jpeg", "{:.2f}"),
    ("index_s_per_min", "index s/video min", "{:.3f}"),
]
RATE = 25
PAN_PX = 2  # camera pan per frame


def write_video(path: Path, height: int, seconds: int, keyint: int | None) -> Path:
    """A panning synthetic endoscopy video (module docstring); ``keyint`` None: x264's default."""
    width = height * 5 // 4
    frames = seconds * RATE
    scene = render_frame(
        np.random.default_rng(0), height + 2, aspect=(width + PAN_PX * frames) / height
    )
    noise = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if keyint is not None:
            stream.options = {"g": str(keyint)}
        for i in range(frames):
            window = scene["image"][:height, i * PAN_PX : i * PAN_PX + width].astype(np.int16)
            noisy = np.clip(window + noise.integers(-3, 4, window.shape), 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(noisy, format="rgb24")))
        container.mux(stream.encode())
    return path


def decode_all(path: Path) -> int:
    """Decode every frame to RGB with one thread; the number decoded."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        return sum(1 for frame in container.decode(stream) if frame.to_ndarray(format="rgb24").size)


def keyframes(path: Path) -> list[int]:
    """Presentation positions of the keyframes."""
    with av.open(str(path)) as container:
        packets = [(p.pts, p.is_keyframe) for p in container.demux(video=0) if p.size]
    return [i for i, (_, key) in enumerate(sorted(packets)) if key]


def decoded_per_frame(keys: list[int], sampled: list[int], order) -> float:
    """Mean frames decoded per frame returned when the frames at positions ``sampled`` are read
    in ``order`` by :class:`~ssl4gie.data.video.OpenVideo`'s rule: decode on from the last frame
    read when no keyframe lies between, else from the keyframe at or before the frame."""
    decoded, last = [], None
    for i in (sampled[j] for j in order):
        key = max(k for k in keys if k <= i)
        start = last + 1 if last is not None and key <= last < i else key
        decoded.append(i - start + 1)
        last = i
    return float(np.mean(decoded))


def save_jpegs(frames: VideoFrames, folder: Path) -> Path:
    folder.mkdir()
    for i in range(len(frames)):
        image = frames[i]["image"].permute(1, 2, 0).numpy()
        Image.fromarray(image).save(folder / f"{i:05d}.jpg", quality=95)
    return folder


def read_all(dataset, order) -> None:
    for i in order:
        dataset[i]


def read_files(paths: list[Path]) -> None:
    for path in paths:
        read_image(path)


def video_rows(height: int, seconds: int, keyint: int | None, scale, tmp: Path) -> list[dict]:
    """The rows of one video (module docstring)."""
    name = "default" if keyint is None else str(keyint)
    path = write_video(tmp / f"video-{name}.mp4", height, seconds, keyint)
    index_seconds = _common.timed(
        lambda: build_video_index(
            path.parent, cache_dir=tmp / f"cache-{name}-once", progress=False
        ),
        torch.device("cpu"),
    )
    layout = VideoFrames(path.parent, size=None, cache_dir=tmp / f"cache-{name}")
    shuffled = random.Random(0).sample(range(len(layout)), len(layout))
    jpegs = build_index(save_jpegs(layout, tmp / f"jpegs-{name}"), tmp, progress=False).paths()
    candidates = {
        "sequential": lambda: decode_all(path),
        "layout 1 fps": lambda: read_all(layout, range(len(layout))),
        "layout 1 fps, shuffled": lambda: read_all(layout, shuffled),
        "jpeg folder": lambda: read_files(jpegs),
    }
    pass_seconds = _common.interleaved_seconds(candidates, scale, torch.device("cpu"))
    frames = {"sequential": seconds * RATE} | {key: len(layout) for key in list(candidates)[1:]}
    jpeg_rate = len(jpegs) / pass_seconds["jpeg folder"]
    keys, sampled = keyframes(path), [RATE * second for second in range(len(layout))]
    decoded_by_reading = {
        "sequential": 1.0,
        "layout 1 fps": decoded_per_frame(keys, sampled, range(len(layout))),
        "layout 1 fps, shuffled": decoded_per_frame(keys, sampled, shuffled),
        "jpeg folder": None,
    }
    rows = []
    for reading, elapsed in pass_seconds.items():
        rate, decoded = frames[reading] / elapsed, decoded_by_reading[reading]
        row = {"keyint": "250 (x264)" if keyint is None else keyint, "reading": reading}
        row |= {"frames": frames[reading], "frames_per_s": rate, "decoded_per_frame": decoded}
        rows.append(row | {"vs_jpeg": rate / jpeg_rate})
    rows[0]["index_s_per_min"] = index_seconds / (seconds / 60)
    return rows


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="video length (default 60 s)")
    args = parser.parse_args()
    scale, device = _common.setup(args)
    scale = replace(scale, warmup=1, steps=args.steps or 3)  # a pass decodes a whole video
    torch.set_num_threads(1)  # per-core figures on the GPU scale too: decoding is on the CPU
    height = scale.frame_size
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for keyint in (None, RATE):
            folder = Path(tmp) / f"keyint-{keyint}"
            folder.mkdir()
            rows += video_rows(height, args.seconds, keyint, scale, folder)
    notes = [
        f"{height * 5 // 4}x{height} H.264 MP4, {args.seconds} s at {RATE} fps; PyAV "
        f"{av.__version__}, FFmpeg {av.ffmpeg_version_info}",
        "shuffled reads seek to the keyframe before each frame: for training on long-GOP "
        "videos, re-encode with short keyframe intervals or convert to shards",
    ]
    title = "Video decoding (frames/s per core)"
    _common.finish("video_decode", title, args, scale, device, rows, COLUMNS, notes, doc=__doc__)


if __name__ == "__main__":
    main()
