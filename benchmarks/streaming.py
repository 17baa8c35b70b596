"""Streaming shards beside the folder layout: images/s per loader worker of
``PretrainDataModule`` reading the same synthetic JPEGs from a folder, from litdata shards in a
local folder, and from the same shards on a local S3 server (moto's standalone server on
127.0.0.1, plain HTTP), in one run.

    python benchmarks/streaming.py [--frames 96] [--frame-height 576] [--workers 1]
        [--batch 16] [--json out]

Each source is read for one full pass (the aspect-true input at 512, decoded in the workers)
after its loader is built; the S3 pass starts from an empty local shard cache, so it includes
the download. The shards are written first (``ssl4gie data optimize``'s function, one writer);
the write time per source is reported too. Frames are synthetic HyperKvasir-sized 720x576
JPEGs; the S3 server runs on this machine, so the network is loopback: the figures compare the
readers, not a real object store's bandwidth.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
import torch

COLUMNS: list[_common.Column] = [
    ("source", "source", "{}"),
    ("write_s", "write s", "{:.1f}"),
    ("images_per_s", "images/s", "{:.1f}"),
    ("workers", "workers", "{}"),
    ("images_per_s_per_worker", "images/s/worker", "{:.1f}"),
    ("vs_folder", "x folder", "{:.2f}"),
]


def s3_server() -> subprocess.Popen:
    """moto's S3 server on a free 127.0.0.1 port, with the AWS variables pointing at it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise SystemExit(
                    "moto's S3 server did not start (pip install 'moto[server]')"
                ) from None
            time.sleep(0.1)
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return server


def one_pass(source, workers: int, batch: int, cache: Path | None) -> float:
    """Images/s of one full pass of a ``PretrainDataModule`` over ``source``."""
    from ssl4gie.data.datamodules import PretrainDataModule

    if cache is not None:
        source.options["cache_dir"] = str(cache)
    data = PretrainDataModule(
        source, max_size=512, batch_size=batch, num_workers=workers, drop_last=False
    )
    data.setup()
    start, count = time.perf_counter(), 0
    for images in data.train_dataloader():
        count += len(images["image"])
    return count / (time.perf_counter() - start)


def written(reader, out: str) -> float:
    """Seconds to write ``reader``'s frames as shards at ``out``."""
    from ssl4gie.data.streaming import optimize_shards

    start = time.perf_counter()
    optimize_shards(reader, out, num_workers=1, progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96, help="synthetic frames (default 96)")
    parser.add_argument("--frame-height", type=int, default=576, help="width 5/4 of it")
    parser.add_argument("--workers", type=int, default=1, help="loader workers (default 1)")
    args = parser.parse_args()
    scale, device = _common.setup(args)
    batch = args.batch or 16
    import boto3

    from ssl4gie.data.datamodules import Source, open_dataset
    from ssl4gie.data.synthetic import synthesize

    server = s3_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            root = synthesize(
                "hyperkvasir-unlabeled", tmp / "hk", args.frames, args.frame_height, progress=False
            )
            folder = Source("hyperkvasir-unlabeled", str(root))
            reader = open_dataset(folder, None)
            boto3.client("s3").create_bucket(Bucket="bench")
            local, remote = str(tmp / "shards"), "s3://bench/shards"
            sources = {
                "folder": (folder, 0.0, None),
                "local shards": (Source("streaming", local), written(reader, local), None),
                "S3 shards (cold cache)": (
                    Source("streaming", remote),
                    written(reader, remote),
                    tmp / "cache",
                ),
            }
            rates = {
                name: one_pass(source, args.workers, batch, cache)
                for name, (source, _, cache) in sources.items()
            }
    finally:
        server.terminate()
        server.wait(timeout=30)
    workers = max(1, args.workers)
    rows = [
        {"source": name, "write_s": sources[name][1] or None, "images_per_s": rate}
        | {"workers": args.workers, "images_per_s_per_worker": rate / workers}
        | {"vs_folder": rate / rates["folder"]}
        for name, rate in rates.items()
    ]
    height = args.frame_height
    notes = [
        f"{args.frames} synthetic {height * 5 // 4}x{height} JPEGs; aspect-true input at 512, "
        f"batch {batch}, {args.workers} loader worker(s) (0: the main process), one pass each",
        "S3: moto's standalone server on 127.0.0.1 (loopback, plain HTTP: litdata's boto3 "
        "path); shards written with one writer",
        f"torch threads: {torch.get_num_threads()}",
    ]
    title = "Streaming shards beside the folder layout"
    _common.finish("streaming", title, args, scale, device, rows, COLUMNS, notes, doc=__doc__)


if __name__ == "__main__":
    main()
