"""Streaming shards: any layout written once as litdata shards (a local folder or
``s3://bucket/prefix``), read back by :class:`~ssl4gie.data.datamodules.PretrainDataModule`
through ``Source("streaming", uri)``.

**Writing** (:func:`optimize_shards`, ``ssl4gie data optimize``). Every sample of a layout's
reader is stored with litdata's ``optimize`` (Lightning AI, https://github.com/Lightning-AI/litData)
as ``{"data": the frame's file bytes, "index": its position in the reader, "meta": JSON of its
"source" path, "group" (video, sequence, patient or "") and "label" (class or -1)}`` (JSON: litdata
would store a string naming a file as that file's content). Image files are stored as they are
(JPEG, PNG, ...; never re-encoded); a reader may give its own bytes through an ``encoded(i)``
method; frames of other files (videos) are stored as JPEGs of quality :data:`JPEG_QUALITY`. Files
that no longer decode are skipped and listed. The shard set is complete only once the marker
:data:`MARKER` (format version, counts, skipped files) is written, after litdata's own
``index.json``: an interrupted set is never read as complete, and running the same command
again resumes from litdata's checkpoints.

**Reading** (:func:`open_streaming`). litdata's ``StreamingDataset``: every process of a
DDP run reads its own part of the shards, each sample at most once per epoch (all of them
when their count divides by world size x batch size, see :func:`open_streaming`); with
``shuffle`` the shard order is permuted every epoch and samples are shuffled within the shards
a worker holds.
The :class:`FrameDecoder` turns the stored bytes into the same sample dicts as the folder
readers (fixed size, aspect-true canvas, or JPEG bytes for ``decode_on_device``). Lightning
saves the ``StreamingDataLoader``'s position in every checkpoint, so resuming from a mid-epoch
checkpoint neither repeats nor skips samples.

**Object storage.** ``s3://`` URIs use the standard AWS environment variables
(:data:`ENV_HELP`). Before any transfer :func:`check_uri` asks the store for the marker with
short timeouts, so a wrong endpoint, missing credentials or a missing bucket fail in seconds
with one line naming the URI and the variable to check (litdata itself retries for minutes).
An ``AWS_ENDPOINT_URL`` over plain ``http://`` (an on-premise MinIO or Ceph, a local test
server) makes litdata use its boto3 client instead of obstore, which refuses plain HTTP
(litdata 0.2.76: its ``litdata.streaming.downloader._OBSTORE_AVAILABLE`` switch).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from PIL import Image

from ssl4gie import __version__
from ssl4gie._io import check_free_space
from ssl4gie.data.decode import (
    _decode_with_pil,
    _decode_with_torchvision,
    _is_torchvision_format,
    fit_to_canvas,
    resize_image,
)
from ssl4gie.data.index import IMAGE_SUFFIXES, check_image
from ssl4gie.errors import InputError

FORMAT_VERSION = 1
"""Version of the shard layout below; a set written with another version is refused on read."""
MARKER = "ssl4gie-shards.json"
"""The file a complete shard set ends with (format version, counts, skipped files)."""
ENV_HELP = (
    "AWS_ENDPOINT_URL (S3-compatible stores), AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(or AWS_PROFILE), AWS_DEFAULT_REGION"
)
"""The environment variables of ``s3://`` URIs (boto3's, which litdata reads)."""
JPEG_QUALITY = 95
"""Quality of the JPEGs stored for frames that are not image files (video frames)."""
_TIMEOUT_S = 3  # connect and read timeout of the reachability check (one attempt each)
_START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
_SPACE_MARGIN = 1.05  # shards hold the bytes plus litdata's per-sample header


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names object storage (``s3://...``) rather than a local folder."""
    return urlparse(str(uri)).scheme not in ("", "file")


def _use_boto3_over_plain_http() -> None:
    """Make litdata skip obstore when ``AWS_ENDPOINT_URL`` is plain ``http://``."""
    if os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        import litdata.streaming.downloader as downloader

        downloader._OBSTORE_AVAILABLE = False


# Spawned litdata workers import this module to unpickle their function: they switch too.
_use_boto3_over_plain_http()


# ---------------------------------------------------------------- the store: marker, checks


def _s3_client():
    import boto3
    import botocore.config

    config = botocore.config.Config(
        connect_timeout=_TIMEOUT_S, read_timeout=_TIMEOUT_S, retries={"total_max_attempts": 1}
    )
    return boto3.session.Session().client("s3", config=config)  # credentials read afresh


def _bucket_key(uri: str, name: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, f"{parsed.path.strip('/')}/{name}".lstrip("/")


def _store_error(uri: str, err: Exception) -> InputError:
    """One line naming ``uri``, what went wrong and the environment variable to check."""
    import botocore.exceptions as boto

    if isinstance(err, boto.NoCredentialsError | boto.PartialCredentialsError):
        what = (
            "no credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        )
    elif isinstance(err, boto.EndpointConnectionError | boto.ConnectTimeoutError):
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "the AWS default")
        what = f"cannot reach the store at {endpoint}; check AWS_ENDPOINT_URL"
    elif isinstance(err, boto.ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            what = "the bucket does not exist; check the URI (and AWS_ENDPOINT_URL)"
        elif code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            what = f"access denied ({code}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        else:
            what = f"{code or type(err).__name__}; check AWS_ENDPOINT_URL and the credentials"
    else:
        what = f"{type(err).__name__}: {err}; check {ENV_HELP}".replace("\n", " ")
    return InputError(f"object store {uri}: {what}")


def _read_marker(uri: str) -> dict | None:
    """The marker of the shard set at ``uri``, or None if there is none (yet)."""
    if not is_remote(uri):
        path = Path(uri).expanduser() / MARKER
        return json.loads(path.read_text()) if path.is_file() else None
    import botocore.exceptions as boto

    bucket, key = _bucket_key(uri, MARKER)
    try:
        body = _s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except boto.ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise _store_error(uri, err) from err
    except boto.BotoCoreError as err:
        raise _store_error(uri, err) from err
    return json.loads(body)


def _write_marker(uri: str, marker: dict) -> None:
    text = json.dumps(marker, indent=1)
    if not is_remote(uri):
        from ssl4gie._io import atomic_file

        with atomic_file(Path(uri).expanduser() / MARKER) as handle:
            handle.write(text)
        return
    bucket, key = _bucket_key(uri, MARKER)
    _s3_client().put_object(Bucket=bucket, Key=key, Body=text.encode())


def check_uri(uri: str) -> dict:
    """The marker of a complete shard set at ``uri``; :class:`~ssl4gie.errors.InputError` (one
    line, within seconds) if the store is unreachable, the set is missing or incomplete, or it
    was written by another shard format version."""
    _use_boto3_over_plain_http()
    marker = _read_marker(uri)
    if marker is None:
        raise InputError(
            f"no complete ssl4gie shard set at {uri} (no {MARKER}: never written, or its "
            "writing was interrupted); run 'ssl4gie data optimize --out URI' (again, it resumes)"
        )
    if marker.get("version") != FORMAT_VERSION:
        raise InputError(
            f"shard set {uri} has shard format version {marker.get('version')} (written by "
            f"ssl4gie {marker.get('ssl4gie', '?')}); this ssl4gie {__version__} reads version "
            f"{FORMAT_VERSION}: write it again with 'ssl4gie data optimize'"
        )
    return marker


# ---------------------------------------------------------------- writing


def _is_image_file(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _frame_bytes(reader, i: int) -> bytes:
    """The stored bytes of sample ``i``: ``reader.encoded(i)`` if the reader defines it, the
    file ``images[i]`` if it is an image file, else the decoded frame (a video's) as a JPEG of
    quality :data:`JPEG_QUALITY`."""
    encoded = getattr(reader, "encoded", None)
    if encoded is not None:
        return encoded(i)
    if _is_image_file(reader.images[i]):
        return Path(reader.images[i]).read_bytes()
    buffer = io.BytesIO()
    image = reader[i]["image"].permute(1, 2, 0).numpy()
    Image.fromarray(image).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _frame_name(reader, i: int) -> str:
    """The sample's file; ``<file>#<i>`` for a frame of a video."""
    images = getattr(reader, "images", None)
    if images is None:
        return str(i)
    return str(images[i]) if _is_image_file(images[i]) else f"{images[i]}#{i}"


def _sample(i: int, reader, bad_dir: str) -> dict | None:
    """The shard record of sample ``i``; None (and a line in ``bad_dir``) if it does not
    decode. Runs in litdata's worker processes."""
    name = _frame_name(reader, i)
    try:
        data = _frame_bytes(reader, i)
        reason = check_image(io.BytesIO(data)) if data else "empty file"
    except OSError as err:
        reason = f"{type(err).__name__}: {err}"
    if reason:
        with open(Path(bad_dir) / f"bad-{os.getpid()}.txt", "a") as handle:
            handle.write(f"{name}\t{reason}\n")
        return None
    groups, targets = getattr(reader, "groups", None), getattr(reader, "targets", None)
    meta = {
        "source": name,
        "group": "" if groups is None else str(groups[i]),
        "label": -1 if targets is None else int(targets[i]),
    }
    return {"data": data, "index": i, "meta": json.dumps(meta)}


@dataclasses.dataclass
class ShardSummary:
    """What :func:`optimize_shards` wrote."""

    uri: str
    samples: int
    shards: int
    bytes: int
    bad_files: list[str]

    def __str__(self) -> str:
        line = (
            f"wrote {self.samples} samples in {self.shards} shards ({self.bytes / 1e6:.1f} MB) "
            f"to {self.uri}"
        )
        if self.bad_files:
            shown = ", ".join(name.split("\t")[0] for name in self.bad_files[:5])
            more = f" (+{len(self.bad_files) - 5} more)" if len(self.bad_files) > 5 else ""
            line += f"; skipped {len(self.bad_files)} unreadable: {shown}{more}, all in {MARKER}"
        return line


def _check_free_space(out: str, reader, n: int) -> None:
    """InputError if a local ``out`` has less free space than the frames' bytes."""
    images = getattr(reader, "images", None)
    if is_remote(out) or images is None or getattr(reader, "encoded", None) is not None:
        return
    need = _SPACE_MARGIN * sum(Path(path).stat().st_size for path in set(images[:n]))
    check_free_space(out, need, f"data optimize --out {out}")


def _index_totals(uri: str) -> tuple[int, int, int]:
    """(samples, shards, bytes) from litdata's ``index.json`` at ``uri``."""
    from litdata.streaming.resolver import _resolve_dir
    from litdata.utilities.dataset_utilities import load_index_file

    if is_remote(uri):
        with tempfile.TemporaryDirectory() as tmp:
            bucket, key = _bucket_key(uri, "index.json")
            _s3_client().download_file(bucket, key, f"{tmp}/index.json")
            chunks = load_index_file(tmp)["chunks"]
    else:
        chunks = load_index_file(_resolve_dir(uri).path)["chunks"]
    return (
        sum(c["chunk_size"] for c in chunks),
        len(chunks),
        sum(c["chunk_bytes"] for c in chunks),
    )


def _exists(uri: str, name: str) -> bool:
    """Whether ``name`` (a file, or ``""``: anything) exists under ``uri``."""
    if not is_remote(uri):
        return (Path(uri).expanduser() / name).exists()
    bucket, key = _bucket_key(uri, name)
    return "Contents" in _s3_client().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)


def optimize_shards(
    reader,
    out: str,
    shard_size: str = "64MB",
    num_workers: int = 1,
    progress: bool = True,
    about: dict[str, Any] | None = None,
    start_method: str | None = None,
) -> ShardSummary:
    """Write every sample of ``reader`` as litdata shards at ``out`` (folder or ``s3://``).

    Args:
        reader: a layout's reader (``open_dataset(source, None)``): ``images`` and/or
            ``encoded(i)``, optionally ``groups`` and ``targets``.
        out: a local folder or ``s3://bucket/prefix``.
        shard_size: the most bytes per shard (litdata's ``chunk_bytes``; 64 MB as in
            litdata's README).
        num_workers: writer processes.
        progress: litdata's progress bar.
        about: kept in the marker (e.g. the layout and root the set came from).
        start_method: how the writers start: ``"fork"`` where the system has it (a spawned
            writer imports torch and ssl4gie again: 29 s against 2 s for 37 frames measured on
            a busy 2-core machine), else ``"spawn"``.

    An existing complete set at ``out`` is an InputError; an interrupted one is resumed. A
    frame skipped by a writer before the interruption makes the resumed run write one sample
    twice: litdata 0.2.76 checkpoints the samples written as the inputs done.
    """
    import litdata

    _use_boto3_over_plain_http()
    out = str(out) if is_remote(out) else str(Path(out).expanduser().resolve())
    if _read_marker(out) is not None:
        raise InputError(f"--out {out} already holds a complete shard set; choose a new --out")
    n = len(reader)
    _check_free_space(out, reader, n)
    bad_dir = _bad_list_dir(out, fresh=not _exists(out, ""))
    if not _exists(out, "index.json"):
        litdata.optimize(
            _WriteOne(reader, str(bad_dir)),
            list(range(n)),
            out,
            chunk_bytes=shard_size,
            num_workers=max(1, min(num_workers, n)),
            use_checkpoint=True,
            reorder_files=False,
            start_method=start_method or _START_METHOD,
            verbose=progress,
        )
    bad = sorted({line for f in bad_dir.iterdir() for line in f.read_text().splitlines()})
    samples, shards, size = _index_totals(out)
    marker = {
        "format": "ssl4gie-shards",
        "version": FORMAT_VERSION,
        "ssl4gie": __version__,
        "samples": samples,
        "shards": shards,
        "bytes": size,
        "jpeg_only": _all_jpeg(reader, n),
        "bad_files": bad,
        **(about or {}),
    }
    _write_marker(out, marker)
    shutil.rmtree(bad_dir, ignore_errors=True)
    return ShardSummary(out, samples, shards, size, bad)


def _bad_list_dir(out: str, fresh: bool) -> Path:
    """A local folder for the writers' lists of skipped files, one per ``out``: kept until the
    set is complete, so a resumed run still lists what the killed one skipped (emptied for a
    ``fresh`` start)."""
    key = hashlib.sha1(out.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"ssl4gie-bad-{key}"
    if fresh:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(exist_ok=True)
    return folder


def _all_jpeg(reader, n: int) -> bool:
    """Whether every stored frame is a JPEG (by file name; video frames are stored as JPEG),
    so that the set suits ``decode_on_device``."""
    images = getattr(reader, "images", None)
    if images is None or getattr(reader, "encoded", None) is not None:
        return False
    suffixes = {Path(images[i]).suffix.lower() for i in range(n)}
    return all(s in (".jpg", ".jpeg") or s not in IMAGE_SUFFIXES for s in suffixes)


@dataclasses.dataclass
class _WriteOne:
    """Picklable ``i -> shard record`` for litdata's worker processes."""

    reader: Any
    bad_dir: str

    def __call__(self, i: int) -> dict | None:
        return _sample(i, self.reader, self.bad_dir)


# ---------------------------------------------------------------- reading


def decode_bytes(data: bytes) -> torch.Tensor:
    """Stored frame bytes -> RGB uint8 ``[3, H, W]``, as :func:`~ssl4gie.data.decode.read_image`
    decodes the file (torchvision for JPEG/PNG/GIF/WebP, PIL for the rest)."""
    data = bytes(data)  # litdata hands out a memoryview
    if _is_torchvision_format(data):
        return _decode_with_torchvision(data, "RGB")
    return _decode_with_pil(data, "RGB")


@dataclasses.dataclass
class FrameDecoder:
    """litdata ``transform``: a shard record -> the sample dict of the folder readers.

    ``encoded``: ``{"jpeg": uint8 [n_bytes], "index"}`` for ``decode_on_device``; else
    ``max_size``: ``{"image": uint8 [3, max_size, max_size], "region": float [4], "index"}``
    (aspect-true, :func:`~ssl4gie.data.decode.fit_to_canvas`); else ``{"image": uint8
    [3, *size], "index"}``.
    """

    size: int | Sequence[int] | None = None
    max_size: int | None = None
    encoded: bool = False

    def __call__(self, record: dict) -> dict[str, torch.Tensor]:
        index = torch.tensor(record["index"])
        if self.encoded:
            return {
                "jpeg": torch.frombuffer(bytearray(record["data"]), dtype=torch.uint8),
                "index": index,
            }
        image = decode_bytes(record["data"])
        if self.max_size is not None:
            canvas, region = fit_to_canvas(image, self.max_size)
            return {"image": canvas, "region": region, "index": index}
        return {"image": resize_image(image, self.size), "index": index}


def open_streaming(
    uri: str,
    size: int | Sequence[int] | None = None,
    max_size: int | None = None,
    encoded: bool = False,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
    cache_dir: str | None = None,
    max_cache_size: str = "50GB",
):
    """litdata ``StreamingDataset`` of the shard set at ``uri``, decoded by :class:`FrameDecoder`.

    Each process of a DDP run reads its own part: every sample at most once per epoch across
    all processes. ``drop_last`` (as litdata does under DDP) gives every process the same
    number of samples, which DDP's collectives need: all samples are read when their count is
    a multiple of world size x batch size, else fewer than that many are left out of the epoch
    (the tail of that epoch's shard order). ``drop_last=False`` reads every sample, but the
    processes may then get different numbers of batches (one process only). ``cache_dir`` /
    ``max_cache_size``: where remote shards are kept locally (litdata's default folder
    otherwise) and how much of them.
    """
    from litdata import StreamingDataset

    marker = check_uri(uri)
    if encoded and not marker.get("jpeg_only"):
        raise InputError(
            f"decode_on_device needs a shard set of JPEG frames; {uri} holds other formats: "
            "set decode_on_device: false"
        )
    return StreamingDataset(
        uri,
        shuffle=shuffle,
        drop_last=drop_last,
        seed=seed,
        cache_dir=cache_dir,
        max_cache_size=max_cache_size,
        transform=FrameDecoder(size, max_size, encoded),
    )


def streaming_loader(dataset, batch_size: int, num_workers: int, collate_fn, drop_last: bool):
    """litdata's ``StreamingDataLoader``: Lightning saves its position in every checkpoint."""
    from litdata import StreamingDataLoader

    return StreamingDataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
    )


def pretrain_stream(sources: Sequence, size, max_size: int | None, encoded: bool, drop_last: bool):
    """The training set of a :class:`~ssl4gie.data.datamodules.PretrainDataModule` whose
    source is ``Source("streaming", uri, options)`` (options: those of :func:`open_streaming`,
    e.g. ``max_cache_size``); a shard set is the only source of a run."""
    if len(sources) != 1:
        raise InputError(
            f"a streaming source must be the only one in data.sources (got {len(sources)}); "
            "write the datasets into one shard set, or pretrain from one set"
        )
    (source,) = sources
    options = {"drop_last": drop_last, **source.options}
    return open_streaming(source.root, size, max_size, encoded, **options)
