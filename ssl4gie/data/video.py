"""Endoscopy videos as a source of frames: the ``video`` layout (``docs/datasets.md``).

**Frames.** Every video under ``root`` (recursive; :data:`VIDEO_SUFFIXES`, any case; hidden names
and ``__MACOSX`` left out as by :mod:`ssl4gie.data.index`) gives the frames sampled at ``fps``
frames per second of video time (default 1: the first frame at or after 0 s, 1 s, 2 s, ...) or,
with ``every``, every n-th frame in presentation order. With ``drop_near_duplicates``, a sampled
frame within ``threshold`` of the last frame kept from its video (scene descriptors,
:mod:`ssl4gie.data.near_duplicates`, the measure of the leak-aware split) is left out, so a
static segment gives one frame. Each frame's group is its video (its path under ``root``), so
group and leak-aware splits never cut a video.

**Index.** Built once and cached beside the image index: a video's packets are demuxed, not
decoded (their timestamps give the frames to sample), and its first sampled frame is decoded to
check the codec; with ``drop_near_duplicates`` the sampled frames are decoded once, in order,
and described. The cache, ``<cache_dir>/<sha1 of root and sampling>.video.json``, keeps each
video's size, mtime (ns), verdict, sampled timestamps and the keyframe before each; an entry
is reused while the video's size and mtime are unchanged, so a repeat build decodes nothing.

**Reading** (:class:`OpenVideo`). A frame that follows the last frame read from its video, with
no keyframe between them, is reached by decoding on; any other by seeking to the keyframe at or
before it and decoding up to it. Frames read in order (indexing, writing shards) thus cost about
one decode of the video; shuffled reads cost up to a keyframe interval each (x264's default:
250 frames, 10 s at 25 fps; ``benchmarks/video_decode.py`` measures both). For long pretraining
runs, convert once to shards. Each process keeps its last few videos open.

**Bad videos** (not a video, truncated, no video stream, a codec this FFmpeg cannot decode, a
first frame that does not decode) are skipped, with one warning naming them and the list file
``<cache_dir>/<sha1>.video.bad.txt`` (relative path, tab, reason). A truncated file either cannot
be opened (an MP4 or MOV whose index is at its end) or its packets end more than
:data:`TRUNCATION_SLACK_S` before the duration its header states. A frame that fails later is
replaced as in every reader (:class:`~ssl4gie.data.datasets._Reader`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from ssl4gie.data.datasets import PathLike, Size, _Reader
from ssl4gie.data.decode import UnreadableImageError, resize_image
from ssl4gie.data.index import _load_cache, _report_bad, _scan, _write_text, default_cache_dir
from ssl4gie.data.near_duplicates import (
    DEFAULT_THRESHOLD,
    _check_threshold,
    descriptor_distances,
    scene_descriptors,
)
from ssl4gie.errors import InputError

if TYPE_CHECKING:
    import av

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv"})
DEFAULT_FPS = 1.0
TRUNCATION_SLACK_S = 0.5
"""Seconds the demuxed packets may end before the stated duration (a last frame's length, an
audio track slightly longer than the video) before a video counts as truncated."""
_OPEN_VIDEOS = 4  # videos each process keeps open
_FORKED: list = []  # a forked process's copies of its parent's open videos, never freed
_UNKNOWN_CODEC = re.compile(r"Video: none \((\S+) /")  # FFmpeg's log line naming the tag


@dataclass(frozen=True)
class VideoInfo:
    """One readable video: ``name`` (relative POSIX path under the root), its ``codec``,
    ``width`` x ``height``, ``seconds`` (stated duration), the stream's ``time_base``, the
    ``pts`` of its sampled frames (in ``time_base`` units, increasing) and the ``keys``, the
    keyframe at or before each."""

    name: str
    codec: str
    width: int
    height: int
    seconds: float
    time_base: Fraction
    pts: list[int]
    keys: list[int]

    def times(self) -> list[float]:
        """Seconds of the sampled frames from the first frame of the video."""
        return [float((pts - self.pts[0]) * self.time_base) for pts in self.pts]


@dataclass(frozen=True)
class VideoIndex:
    """The readable videos under ``root`` and the frames they give, sorted by name;
    ``bad_videos`` (relative paths) are listed in ``bad_list_path`` (None if none)."""

    root: Path
    sampling: str
    videos: list[VideoInfo]
    bad_videos: list[str]
    bad_list_path: Path | None
    cache_path: Path

    def frames(self) -> int:
        """Sampled frames of all readable videos."""
        return sum(len(video.pts) for video in self.videos)


def check_sampling(fps: float | None, every: int | None) -> tuple[float | None, int | None]:
    """``(fps, every)`` with the default 1 fps when neither is given; InputError if both are,
    or if ``fps`` is not positive or ``every`` not a positive integer."""
    if fps is not None and every is not None:
        raise InputError(f"give fps ({fps}) or every ({every}), not both: they sample frames alike")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise InputError(f"every must be a positive whole number of frames, got {every!r}")
    if every is None and fps is None:
        return DEFAULT_FPS, None
    if every is None and not fps > 0:
        raise InputError(f"fps must be a positive number of frames per second, got {fps!r}")
    return (None, every) if every is not None else (float(fps), None)


def sampling_name(fps: float | None, every: int | None, threshold: float | None) -> str:
    """The sampling as text, e.g. ``"1 fps"``, ``"1 frame in 5, near-duplicates at 0.45"`` (the
    index cache is keyed by it)."""
    text = f"{fps:g} fps" if every is None else f"1 frame in {every}"
    return text if threshold is None else f"{text}, near-duplicates at {threshold:g}"


def sample_pts(pts: Sequence[int], time_base: Fraction, fps: float | None, every: int | None):
    """The sampled frames of a video from its frames' ``pts`` (presentation order) -> list.

    ``every``: ``pts[::every]``. ``fps``: for each time ``k / fps`` from the first frame up to the
    last, the first frame at or after it (within a microsecond), each frame at most once.
    """
    if every is not None:
        return list(pts[::every])
    seconds = (np.asarray(pts, dtype=np.float64) - pts[0]) * float(time_base)
    targets = np.arange(0.0, seconds[-1] + 1e-6, 1.0 / fps)
    chosen = np.unique(np.searchsorted(seconds, targets - 1e-6, side="left"))
    return [int(pts[i]) for i in chosen[chosen < len(pts)]]


def _pyav():
    """PyAV, imported on first use: the ``video`` extra, needed only where there are videos."""
    try:
        import av
        import av.logging
    except ImportError as err:
        raise InputError(
            f"reading videos needs PyAV ({err}); install it: pip install 'ssl4gie[video]'"
        ) from err
    return av


def _video_stream(container) -> av.VideoStream:
    if not container.streams.video:
        raise UnreadableImageError("no video stream")
    return container.streams.video[0]


def _open_checked(path: Path):
    """Open ``path`` and its first video stream; an unknown codec raises with its tag, as
    FFmpeg logs it (PyAV gives no codec context for it)."""
    av = _pyav()
    level = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture() as logs:
            container = av.open(str(path))
    finally:
        av.logging.set_level(level)
    try:
        stream = _video_stream(container)
        if stream.codec_context is None:
            tags = [m.group(1) for *_, text in logs for m in [_UNKNOWN_CODEC.search(text)] if m]
            tag = tags[0] if tags else "unknown"
            version = f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}"
            raise UnreadableImageError(f"video codec {tag} has no decoder in FFmpeg ({version})")
    except UnreadableImageError:
        container.close()
        raise
    return container, stream


def _stated_seconds(container, stream) -> float | None:
    """The duration the header states: the stream's, else the container's."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else None  # AV_TIME_BASE


def _demuxed_pts(container, stream) -> tuple[list[int], list[int]]:
    """Presentation timestamps of every video packet and of the keyframes, sorted; raises if
    the packets end :data:`TRUNCATION_SLACK_S` before the stated duration: the video stream's
    (MP4, MOV, AVI), else the container's (MKV), which the packets of every stream are
    measured against (so a sound track longer than the video is no truncation)."""
    pts, keys, video_end, any_end = [], [], 0.0, 0.0
    for packet in container.demux():
        stamp = packet.pts if packet.pts is not None else packet.dts
        if not packet.size or stamp is None:
            continue
        end = float((stamp + (packet.duration or 0)) * packet.time_base)
        any_end = max(any_end, end)
        if packet.stream.index == stream.index:
            pts.append(stamp)
            keys += [stamp] if packet.is_keyframe else []
            video_end = max(video_end, end)
    if not pts:
        raise UnreadableImageError("no video frames")
    pts.sort()
    if stream.duration:
        stated, ends = float(stream.duration * stream.time_base), video_end
        ends -= float(pts[0] * stream.time_base)
    elif container.duration:  # in AV_TIME_BASE units (microseconds)
        stated, ends = container.duration / 1e6, any_end - (container.start_time or 0) / 1e6
    else:
        return pts, sorted(keys)
    if ends < stated - TRUNCATION_SLACK_S:
        raise UnreadableImageError(f"truncated: its frames end at {ends:.1f} s of {stated:.1f} s")
    return pts, sorted(keys)


def keyframes_before(pts: Sequence[int], keys: Sequence[int], first: int) -> list[int]:
    """For each of ``pts``, the last of ``keys`` at or before it (``first`` if none is): where
    decoding it starts."""
    before = np.searchsorted(np.asarray(keys, dtype=np.int64), pts, side="right") - 1
    return [int(keys[i]) if i >= 0 else first for i in before]


def _frame_at(frames, pts: int, after_seek: bool) -> av.VideoFrame | None:
    """The first frame from the decoder ``frames`` at or after ``pts``; None if it ends first,
    or (``after_seek``) if its first frame is already past ``pts``: the seek overshot."""
    for position, frame in enumerate(frames):
        if frame.pts is None or frame.pts < pts:
            continue
        return None if after_seek and position == 0 and frame.pts > pts else frame
    return None


class OpenVideo:
    """A video open for reading frames: a frame after the last one read, with no keyframe
    between them, is reached by decoding on; any other is reached by a seek to the keyframe at
    or before it (from the start if the container's index seeks past it)."""

    def __init__(self, container, stream) -> None:
        self.container, self.stream = container, stream
        self.frames, self.last = iter(()), None

    @classmethod
    def open(cls, path: Path) -> OpenVideo:
        """One decoder thread: loader workers decode in parallel already."""
        container, stream = _open_checked(path)
        stream.codec_context.thread_count = 1
        return cls(container, stream)

    def _seek(self, pts: int) -> None:
        self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
        self.frames = self.container.decode(self.stream)

    def read(self, pts: int, key: int) -> av.VideoFrame:
        """The frame at ``pts`` (or the first after it); ``key``: the keyframe at or before it."""
        onward = self.last is not None and key <= self.last < pts
        if not onward:
            self._seek(key)
        frame = _frame_at(self.frames, pts, after_seek=not onward)
        if frame is None:
            self._seek(self.stream.start_time or 0)
            frame = _frame_at(self.frames, pts, after_seek=False)
        if frame is None:
            raise UnreadableImageError(f"no frame at pts {pts}: the video ends before it")
        self.last = frame.pts
        return frame

    def close(self) -> None:
        self.container.close()


def _rgb(frame: av.VideoFrame) -> torch.Tensor:
    """uint8 ``[3, H, W]``."""
    return torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).contiguous()


def _distinct(video: OpenVideo, pts: list[int], keys: list[int], threshold: float) -> list[bool]:
    """Whether to keep each sampled frame: not within ``threshold`` of the last one kept. The
    frames are read in order, so the video is decoded about once."""
    kept, last = [], None
    for frame_pts, key in zip(pts, keys, strict=True):
        described = scene_descriptors(_rgb(video.read(frame_pts, key)))
        pair = described if last is None else np.concatenate([last, described])
        kept.append(last is None or bool(descriptor_distances(pair, [0], [1])[0] > threshold))
        last = described if kept[-1] else last
    return kept


def probe_video(path: Path, fps, every, threshold: float | None) -> dict:
    """``{"codec", "width", "height", "seconds", "time_base": [num, den], "pts", "keys"}`` of a
    video's sampled frames and the keyframes before them (raising on a bad video); the first
    frame is decoded to check the codec."""
    container, stream = _open_checked(path)
    with container:
        every_pts, keys = _demuxed_pts(container, stream)
        pts = sample_pts(every_pts, stream.time_base, fps, every)
        keys = keyframes_before(pts, keys, every_pts[0])
        video = OpenVideo(container, stream)
        video.read(pts[0], keys[0])
        if threshold is not None:
            kept = _distinct(video, pts, keys, threshold)
            pts = [p for p, keep in zip(pts, kept, strict=True) if keep]
            keys = [k for k, keep in zip(keys, kept, strict=True) if keep]
        context = stream.codec_context
        return {
            "codec": context.name,
            "width": context.width,
            "height": context.height,
            "seconds": _stated_seconds(container, stream) or 0.0,
            "time_base": [stream.time_base.numerator, stream.time_base.denominator],
            "pts": pts,
            "keys": keys,
        }


def _verdict(root: Path, name: str, fps, every, threshold) -> tuple[str, dict | None]:
    """``("", info)`` for a readable video, ``(reason, None)`` for a bad one."""
    av = _pyav()
    try:
        return "", probe_video(root / name, fps, every, threshold)
    except (av.FFmpegError, OSError, ValueError) as err:  # UnreadableImageError is an OSError
        reason = (
            str(err) if isinstance(err, UnreadableImageError) else f"{type(err).__name__}: {err}"
        )
        return reason.replace("\n", " "), None


def build_video_index(
    root: PathLike,
    fps: float | None = None,
    every: int | None = None,
    drop_near_duplicates: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
    cache_dir: PathLike | None = None,
    progress: bool = True,
) -> VideoIndex:
    """Index the videos under ``root`` and the frames they give (module docstring), probing
    only the videos the cache does not vouch for.

    Raises :class:`~ssl4gie.errors.InputError` if ``root`` is not a folder or the sampling is
    invalid. Warns once, naming them, if unreadable videos were skipped.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise InputError(f"video folder {root} does not exist; pass the folder holding the videos")
    fps, every = check_sampling(fps, every)
    limit = _check_threshold(threshold) if drop_near_duplicates else None
    sampling = sampling_name(fps, every, limit)
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    key = hashlib.sha1(f"{root}\n{sampling}".encode()).hexdigest()
    cache_path = cache_dir / f"{key}.video.json"
    cached = _load_cache(cache_path, root)
    entries = {name: [size, mtime, None, None] for name, size, mtime in _scan(root, VIDEO_SUFFIXES)}
    for name, entry in entries.items():
        if cached.get(name, [None, None])[:2] == entry[:2]:
            entry[2:] = cached[name][2:]
    unchecked = sorted(name for name, entry in entries.items() if entry[2] is None)
    for name in tqdm(unchecked, desc=f"indexing videos in {root.name}", disable=not progress):
        entries[name][2:] = _verdict(root, name, fps, every, limit)
    if unchecked or len(entries) != len(cached):
        payload = {"version": 1, "root": str(root), "sampling": sampling, "files": entries}
        _write_text(cache_path, json.dumps(payload))
    bad_list_path = cache_dir / f"{key}.video.bad.txt"
    bad = _report_bad(root, bad_list_path, entries, "video(s)")
    videos = [_info(name, entry[3]) for name, entry in sorted(entries.items()) if not entry[2]]
    return VideoIndex(root, sampling, videos, bad, bad_list_path if bad else None, cache_path)


def _info(name: str, info: dict) -> VideoInfo:
    fields = {key: value for key, value in info.items() if key != "time_base"}
    return VideoInfo(name=name, time_base=Fraction(*info["time_base"]), **fields)


class VideoFrames(_Reader):
    """The sampled frames of every video under ``root`` (module docstring): ``{"image",
    "index"}``, at ``size`` (None: as stored, for aspect-true pretraining input).

    ``images`` holds each frame's video file, ``video_ids`` (also ``groups``) its path under
    ``root``, ``times`` its seconds from the start of the video, ``pts`` its timestamp and
    ``keys`` that of the keyframe its decoding starts from. Reading the frames of a video in
    order decodes it once (between keyframes), not once per frame.

    Args:
        root: folder of videos (searched recursively).
        size: fixed frame size, ``int`` or ``(height, width)``; None keeps the stored size.
        fps: frames sampled per second of video (default 1 when ``every`` is not given).
        every: sample every n-th frame instead.
        drop_near_duplicates: leave out a frame within ``threshold`` of the last one kept.
        threshold: the scene-descriptor distance of ``drop_near_duplicates`` (0.45:
            :data:`~ssl4gie.data.near_duplicates.DEFAULT_THRESHOLD`).
        cache_dir: where the index goes (default ``~/.cache/ssl4gie/index``).
    """

    def __init__(
        self,
        root: PathLike,
        size: Size | None,
        fps: float | None = None,
        every: int | None = None,
        drop_near_duplicates: bool = False,
        threshold: float = DEFAULT_THRESHOLD,
        cache_dir: PathLike | None = None,
    ) -> None:
        super().__init__(size)
        self.index = build_video_index(
            root, fps, every, drop_near_duplicates, threshold, cache_dir, progress=False
        )
        if not self.index.videos:
            suffixes = ", ".join(sorted(VIDEO_SUFFIXES))
            raise InputError(f"no readable video under {self.index.root}; expected {suffixes}")
        videos = self.index.videos
        self.images = [self.index.root / video.name for video in videos for _ in video.pts]
        self.video_ids = [video.name for video in videos for _ in video.pts]
        self.groups = self.video_ids
        self.pts = [pts for video in videos for pts in video.pts]
        self.keys = [key for video in videos for key in video.keys]
        self.times = [time for video in videos for time in video.times()]
        self._open: dict[Path, OpenVideo] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": {}}  # open videos stay with their process

    def _video(self, path: Path) -> OpenVideo:
        """``path`` open for reading, kept open per process (the last few used)."""
        if self._pid != os.getpid():  # a forked loader worker: the parent's videos are not ours
            _FORKED.append(self._open)  # and freeing a decoder copied by fork can hang
            self._open, self._pid = {}, os.getpid()
        if path not in self._open:
            if len(self._open) >= _OPEN_VIDEOS:
                self._close(next(iter(self._open)))
            self._open[path] = OpenVideo.open(path)
        self._open[path] = self._open.pop(path)  # most recently used last
        return self._open[path]

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        path, av = self.images[i], _pyav()
        try:
            frame = self._video(path).read(self.pts[i], self.keys[i])
        except (av.FFmpegError, OSError) as err:
            self._close(path)
            where = f"{path} at {self.times[i]:.3f} s"
            raise UnreadableImageError(f"cannot decode {where}: {err}") from err
        return {"image": resize_image(_rgb(frame), self.size)}

    def _close(self, path: Path) -> None:
        """Close ``path`` if open here (a failed read may leave its decoder in a bad state)."""
        opened = self._open.pop(path, None)
        if opened is not None:
            opened.close()
