"""Run a function on every process of a CPU gloo group, for the DDP parity tests.

``run_distributed(job)`` spawns ``world_size`` fresh processes (``spawn`` start method, so no
state forked from pytest), joins them into a gloo group over loopback on a free port, calls
``job(rank, world_size)`` in each, and returns the per-rank results in rank order. ``job`` must be
a module-level function (it is pickled by name) returning what ``torch.save`` can store with
``weights_only`` loading: tensors, numbers, and lists and dicts of them. An exception in any
process is raised in the caller with its traceback.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

# Left by torchrun, Lightning or an earlier run; the group is set up from arguments instead.
_LAUNCHER_ENV = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "NODE_RANK",
    "TORCHELASTIC_RUN_ID",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_one(rank: int, world_size: int, port: int, job: Callable, out_dir: str) -> None:
    for name in _LAUNCHER_ENV:
        os.environ.pop(name, None)
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=120),
    )
    try:
        torch.save(job(rank, world_size), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_distributed(job: Callable[[int, int], Any], world_size: int = 2) -> list[Any]:
    """Return ``[job(0, world_size), ..., job(world_size - 1, world_size)]``, run in parallel."""
    with tempfile.TemporaryDirectory(prefix="ssl4gie-ddp-") as out_dir:
        mp.spawn(
            _run_one,
            args=(world_size, _free_port(), job, out_dir),
            nprocs=world_size,
            join=True,
            start_method="spawn",
        )
        return [torch.load(Path(out_dir) / f"rank{r}.pt") for r in range(world_size)]
